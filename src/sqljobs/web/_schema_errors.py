"""Routes that answer 503 with what to do when the sqljobs tables do not exist yet.

A router cannot register exception handlers (only the app can), so the API and the dashboard
use this route class: without it a dashboard mounted before ``jobs.create_schema()`` or the
migrations ran would answer a bare 500.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from ..exceptions import SchemaNotReady

logger = logging.getLogger("sqljobs.web")

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _answering_schema_missing(handler: Handler, respond: Callable[[str], Response]) -> Handler:
    async def answer(request: Request) -> Response:
        try:
            return await handler(request)
        except SchemaNotReady as exc:
            logger.warning("%s %s: %s", request.method, request.url.path, exc)
            return respond(str(exc))

    return answer


def _json_problem(message: str) -> Response:
    return JSONResponse({"detail": message}, status_code=503)


def _html_problem(message: str) -> Response:
    body = f"<!doctype html><title>sqljobs</title><h1>503</h1><p>{html.escape(message)}</p>"
    return HTMLResponse(body, status_code=503)


class ApiRoute(APIRoute):
    """A JSON API route: ``503 {"detail": "The sqljobs tables are missing: ..."}``."""

    def get_route_handler(self) -> Handler:
        return _answering_schema_missing(super().get_route_handler(), _json_problem)


class PageRoute(APIRoute):
    """A dashboard page: a 503 HTML page that says how to create the tables."""

    def get_route_handler(self) -> Handler:
        return _answering_schema_missing(super().get_route_handler(), _html_problem)
