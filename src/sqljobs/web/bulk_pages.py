"""The dashboard's bulk pages: retry, cancel or delete every job the job list's filter
matches (a count and a confirmation first, then batches), and pause or resume a queue from
the overview. Mounted with the other mutating pages, behind the same CSRF check."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from .. import _overview
from .._utils import utcnow
from ..jobqueue import JobQueue
from ._csrf import FIELD, CsrfError, CsrfProtect

if TYPE_CHECKING:
    from .dashboard import Dashboard

ACTIONS = {"retry": "Retry", "cancel": "Cancel", "delete": "Delete"}
#: The job list's filter fields a bulk form carries.
FILTER_FIELDS = ("state", "queue", "task", "error_type", "newer_than", "older_than")


def _filter_of(form: dict[str, str]) -> dict[str, Any]:
    """The keyword arguments of ``jobs.bulk`` for the list filter in ``form``."""
    now = utcnow()
    newer, older = form.get("newer_than"), form.get("older_than")
    return {
        "state": form.get("state") or None,
        "queue": form.get("queue") or None,
        "task": form.get("task") or None,
        "error_type": form.get("error_type") or None,
        "created_after": now - _overview.parse_age(newer) if newer else None,
        "created_before": now - _overview.parse_age(older) if older else None,
    }


def add_bulk_pages(
    pages: APIRouter,
    board: Dashboard,
    csrf: CsrfProtect,
    jobs: JobQueue,
    parse_form: Any,
) -> None:
    async def checked_form(request: Request) -> dict[str, str] | Response:
        form: dict[str, str] = parse_form(await request.body())
        try:
            csrf.verify(request, form.get(FIELD))
        except CsrfError as exc:
            return board.render(
                request, "refused.html", status_code=403, reason=str(exc), job_id=None
            )
        return form

    @pages.post("/bulk", name="sqljobs_dashboard_bulk")
    async def bulk(request: Request) -> Response:
        """First post: count and ask (``confirm`` absent); second: do it and show the result."""
        form = await checked_form(request)
        if isinstance(form, Response):
            return form
        action = form.get("action", "")
        chosen = {k: form[k] for k in FILTER_FIELDS if form.get(k)}
        back = str(request.url_for("sqljobs_dashboard_jobs").path) + (
            "?" + urlencode(chosen) if chosen else ""
        )
        context: dict[str, Any] = {
            "action": action,
            "label": ACTIONS.get(action, action),
            "chosen": chosen,
            "back": back,
            "result": None,
            "problem": None,
        }
        try:
            if action not in ACTIONS:
                raise ValueError(f"unknown bulk action {action!r}: choose retry, cancel or delete")
            where = _filter_of(form)
            dry_run = form.get("confirm") != "yes"
            result = await run_in_threadpool(
                lambda: jobs.bulk(action, dry_run=dry_run, **where)  # type: ignore[arg-type]
            )
        except ValueError as exc:
            context["problem"] = str(exc)
            return board.render(request, "bulk.html", status_code=422, **context)
        context["result"] = result
        return board.render(request, "bulk.html", **context)

    async def change_queue(request: Request, *, paused: bool) -> Response:
        # The queue's name comes in the form, not the path: any name round-trips.
        form = await checked_form(request)
        if isinstance(form, Response):
            return form
        try:
            change = jobs.pause_queue if paused else jobs.resume_queue
            await run_in_threadpool(change, form.get("queue", ""))
        except ValueError as exc:
            return board.render(
                request, "refused.html", status_code=422, reason=str(exc), job_id=None
            )
        notice = "paused" if paused else "resumed"
        target = str(request.url_for("sqljobs_dashboard").path)
        return RedirectResponse(f"{target}?notice={notice}", status_code=303)

    @pages.post("/queues/pause", name="sqljobs_dashboard_pause")
    async def pause(request: Request) -> Response:
        return await change_queue(request, paused=True)

    @pages.post("/queues/resume", name="sqljobs_dashboard_resume")
    async def resume(request: Request) -> Response:
        return await change_queue(request, paused=False)
