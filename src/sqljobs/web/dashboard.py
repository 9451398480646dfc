"""The web dashboard: server-rendered Jinja2 pages with a little vendored JavaScript.

Pages: the queues overview (counts per state, throughput chart, workers), the job list
(filters and paging) and the job detail (arguments, result, attempts, errors with tracebacks,
retry / cancel / delete buttons). Each page refreshes its live part in place: the script asks
for the same URL with ``X-Sqljobs-Live: 1`` and the server renders only that fragment.

Everything that comes from job rows is escaped by Jinja2's autoescaping; a strict
Content-Security-Policy allows only this router's own script and stylesheet; forms are
protected by a signed double-submit CSRF token (see :mod:`sqljobs.web._csrf`).
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from .. import _overview
from .._overview import STATE_ORDER, ActionRefused
from .._secrets import redacted
from .._utils import utcnow
from ..exceptions import ConfigurationError, JobNotFound
from ..jobqueue import JobQueue
from ..jobs import Job, JobState
from ..store import JobFilters
from ._csrf import FIELD, CsrfError, CsrfProtect
from ._schema_errors import PageRoute
from .bulk_pages import add_bulk_pages
from .schemas import ThroughputOut

if TYPE_CHECKING:
    import jinja2

PAGE_SIZE = 50
LIVE_HEADER = "x-sqljobs-live"
STATIC_FILES = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
#: Choices offered by the list's age filters: (value, label).
NEWER_CHOICES = [
    ("15m", "last 15 minutes"),
    ("1h", "last hour"),
    ("24h", "last 24 hours"),
    ("7d", "last 7 days"),
]
OLDER_CHOICES = [("1h", "over an hour ago"), ("24h", "over a day ago"), ("7d", "over a week ago")]
WINDOWS = {"15m": 60, "1h": 60, "6h": 72, "24h": 96}
NOTICES = {
    "retried": "The job will run again.",
    "cancelled": "The job was cancelled.",
    "deleted": "The job was deleted.",
    "paused": "The queue is paused: workers stop claiming its jobs within one poll.",
    "resumed": "The queue is resumed.",
    "graph-cancelled": "The graph's unfinished jobs were cancelled.",
}


def _environment() -> jinja2.Environment:
    try:
        import jinja2
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ConfigurationError(
            "the sqljobs dashboard needs Jinja2: pip install 'sqljobs[dashboard]' "
            "(or router(..., dashboard=False) for the JSON API alone)"
        ) from None
    folder = resources.files("sqljobs.web") / "templates"
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pretty"] = _pretty_json
    env.filters["redacted"] = redacted
    env.filters["compact"] = lambda value: json.dumps(value, ensure_ascii=False, default=str)
    env.filters["ago"] = _ago
    env.filters["iso"] = lambda value: value.isoformat(timespec="seconds") if value else ""
    env.filters["age"] = _overview.format_age
    env.globals["STATE_ORDER"] = STATE_ORDER
    env.globals["unserved_warning"] = _overview.unserved_warning
    env.filters["progress_of"] = lambda job: getattr(job, "progress", None)
    return env


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _ago(value: datetime | None) -> str:
    if value is None:
        return "—"
    delta = utcnow() - value
    if delta < timedelta(0):
        return f"in {_overview.format_age(-delta)}"
    return f"{_overview.format_age(delta)} ago"


def _given(value: str | None) -> list[str]:
    return [value] if value else []


def _parse_form(body: bytes) -> dict[str, str]:
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items() if v}


class Dashboard:
    """Renders the pages for one JobQueue."""

    def __init__(
        self, jobs: JobQueue, *, read_only: bool, csrf: CsrfProtect, refresh_seconds: float
    ) -> None:
        self.jobs = jobs
        self.read_only = read_only
        self.csrf = csrf
        self.refresh_seconds = refresh_seconds
        self.env = _environment()

    def render(
        self,
        request: Request,
        template: str,
        *,
        live_template: str | None = None,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        live = request.headers.get(LIVE_HEADER) == "1"
        token, new_token = self.csrf.token_for(request)

        def url(name: str, /, **params: Any) -> str:
            return str(request.url_for(name, **{k: str(v) for k, v in params.items()}).path)

        context.update(
            request=request,
            url=url,
            csrf_field=FIELD,
            csrf_token=token,
            read_only=self.read_only,
            refresh_ms=int(self.refresh_seconds * 1000),
            now=utcnow(),
            notice=NOTICES.get(request.query_params.get("notice", "")),
        )
        chosen = live_template if live and live_template else template
        html = self.env.get_template(chosen).render(context)
        response = HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
        if new_token:
            self.csrf.set_cookie(response, token, secure=request.url.scheme == "https")
        return response

    def overview_context(self) -> dict[str, Any]:
        return {"view": _overview.overview(self.jobs), "windows": list(WINDOWS)}

    def list_context(self, request: Request) -> dict[str, Any]:
        params = request.query_params
        state = params.get("state") or None
        if state is not None and state not in {s.value for s in JobState}:
            raise HTTPException(422, f"unknown state {state!r}")
        newer = params.get("newer_than") or None
        older = params.get("older_than") or None
        now = utcnow()
        try:
            newer_delta = _overview.parse_age(newer) if newer else None
            older_delta = _overview.parse_age(older) if older else None
            page = max(1, int(params.get("page") or 1))
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        filters = JobFilters(
            states=[state] if state else None,
            queue=params.get("queue") or None,
            task=params.get("task") or None,
            created_after=now - newer_delta if newer_delta is not None else None,
            created_before=now - older_delta if older_delta is not None else None,
            error_type=params.get("error_type") or None,
        )
        found, total = self.jobs.store.search_jobs(
            filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
        )
        queues, tasks = self.jobs.store.job_names()
        chosen = {
            "state": state or "",
            "queue": filters.queue or "",
            "task": filters.task or "",
            "newer_than": newer or "",
            "older_than": older or "",
            "error_type": filters.error_type or "",
        }
        pages = max(1, math.ceil(total / PAGE_SIZE))

        def page_query(number: int) -> str:
            kept = {k: v for k, v in chosen.items() if v}
            if number > 1:
                kept["page"] = str(number)
            return "?" + urlencode(kept) if kept else "?"

        return {
            "found": found,
            "total": total,
            "page": page,
            "pages": pages,
            "first_index": (page - 1) * PAGE_SIZE + 1 if found else 0,
            "last_index": (page - 1) * PAGE_SIZE + len(found),
            "page_query": page_query,
            "chosen": chosen,
            "filtered": any(chosen.values()),
            # The chosen values stay selectable even when no row (or task) has them yet.
            "queues": sorted({*queues, *self.jobs.registry.queues(), *_given(filters.queue)}),
            "tasks": sorted({*tasks, *self.jobs.registry, *_given(filters.task)}),
            "newer_choices": NEWER_CHOICES,
            "older_choices": OLDER_CHOICES,
        }

    def job_context(self, job: Job) -> dict[str, Any]:
        return {
            "job": job,
            "progress": getattr(job, "progress", None),
            "progress_message": getattr(job, "progress_message", None),
            "errors": list(reversed(job.errors)),
            "steps": self.jobs.steps(job.id),
            "logs": self.jobs.logs(job.id),
            "can_retry": job.state is not JobState.RUNNING,
            "can_cancel": not job.state.is_finished,
            "can_delete": job.state is not JobState.RUNNING,
        }


def build_dashboard_router(
    jobs: JobQueue,
    *,
    read_only: bool,
    csrf_secret: bytes | str | None,
    refresh_seconds: float,
) -> APIRouter:
    csrf = CsrfProtect(csrf_secret)
    board = Dashboard(jobs, read_only=read_only, csrf=csrf, refresh_seconds=refresh_seconds)
    pages = APIRouter(include_in_schema=False, route_class=PageRoute)

    def set_cookie_path(request: Request) -> None:
        # The cookie is scoped to wherever the dashboard is mounted.
        csrf.cookie_path = str(request.url_for("sqljobs_dashboard").path)

    @pages.get("/", response_class=HTMLResponse, name="sqljobs_dashboard")
    def overview(request: Request) -> HTMLResponse:
        set_cookie_path(request)
        return board.render(
            request,
            "overview.html",
            live_template="_overview_live.html",
            **board.overview_context(),
        )

    @pages.get("/jobs", response_class=HTMLResponse, name="sqljobs_dashboard_jobs")
    def job_list(request: Request) -> HTMLResponse:
        set_cookie_path(request)
        return board.render(
            request, "jobs.html", live_template="_jobs_live.html", **board.list_context(request)
        )

    @pages.get("/jobs/{job_id}", response_class=HTMLResponse, name="sqljobs_dashboard_job")
    def job_detail(request: Request, job_id: int) -> HTMLResponse:
        set_cookie_path(request)
        try:
            job = jobs.get(job_id)
        except JobNotFound:
            return board.render(request, "missing.html", status_code=404, job_id=job_id)
        return board.render(
            request, "job.html", live_template="_job_live.html", **board.job_context(job)
        )

    @pages.get("/throughput.json", name="sqljobs_dashboard_throughput")
    def throughput(request: Request) -> JSONResponse:
        window = request.query_params.get("window", "1h")
        if window not in WINDOWS:
            raise HTTPException(422, f"window must be one of {', '.join(WINDOWS)}")
        data = _overview.throughput(
            jobs, window=_overview.parse_age(window), buckets=WINDOWS[window]
        )
        return JSONResponse(
            ThroughputOut.of(data).model_dump(mode="json"), headers={"Cache-Control": "no-store"}
        )

    @pages.get("/static/{name}", name="sqljobs_dashboard_static")
    def static(name: str) -> FileResponse:
        if name not in STATIC_FILES:
            raise HTTPException(404, "no such file")
        path = resources.files("sqljobs.web") / "static" / name
        return FileResponse(
            str(path),
            media_type=STATIC_FILES[name],
            headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"},
        )

    from .graph_pages import add_graph_pages  # the page per job graph

    add_graph_pages(pages, board, jobs, csrf=csrf, read_only=read_only, parse_form=_parse_form)
    if read_only:
        return pages

    async def act(request: Request, job_id: int, action: Any, notice: str) -> Response:
        form = _parse_form(await request.body())
        try:
            csrf.verify(request, form.get(FIELD))
        except CsrfError as exc:
            return board.render(
                request, "refused.html", status_code=403, reason=str(exc), job_id=job_id
            )
        try:
            await run_in_threadpool(action, jobs, job_id)
        except JobNotFound:
            return board.render(request, "missing.html", status_code=404, job_id=job_id)
        except ActionRefused as exc:
            job = await run_in_threadpool(jobs.get, job_id)
            return board.render(
                request, "job.html", status_code=409, refused=str(exc), **board.job_context(job)
            )
        if notice == "deleted":
            target = str(request.url_for("sqljobs_dashboard_jobs").path)
        else:
            target = str(request.url_for("sqljobs_dashboard_job", job_id=str(job_id)).path)
        return RedirectResponse(f"{target}?notice={notice}", status_code=303)

    @pages.post("/jobs/{job_id}/retry", name="sqljobs_dashboard_retry")
    async def retry(request: Request, job_id: int) -> Response:
        return await act(request, job_id, _overview.retry_job, "retried")

    @pages.post("/jobs/{job_id}/cancel", name="sqljobs_dashboard_cancel")
    async def cancel(request: Request, job_id: int) -> Response:
        return await act(request, job_id, _overview.cancel_job, "cancelled")

    @pages.post("/jobs/{job_id}/delete", name="sqljobs_dashboard_delete")
    async def delete(request: Request, job_id: int) -> Response:
        return await act(request, job_id, _overview.delete_job, "deleted")

    add_bulk_pages(pages, board, csrf, jobs, _parse_form)

    return pages
