"""The dashboard's page per job graph (``/graphs/{id}``): each job's state, what it waits
for, its attempts and last error, live-refreshed; and its Cancel button."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from ..exceptions import GraphNotFound
from ..graphs import GraphSnapshot
from ._csrf import FIELD, CsrfError, CsrfProtect

if TYPE_CHECKING:
    from ..jobqueue import JobQueue
    from .dashboard import Dashboard


def graph_context(graph: GraphSnapshot) -> dict[str, Any]:
    return {
        "graph": graph,
        "rows": [(job, graph.parents_of(job.id)) for job in graph.jobs],
        "counts": sorted((state.value, n) for state, n in graph.counts().items()),
        "can_cancel": any(not job.state.is_finished for job in graph.jobs),
    }


def add_graph_pages(
    pages: APIRouter,
    board: Dashboard,
    jobs: JobQueue,
    *,
    csrf: CsrfProtect,
    read_only: bool,
    parse_form: Any,
) -> None:
    @pages.get("/graphs/{graph_id}", response_class=HTMLResponse, name="sqljobs_dashboard_graph")
    def graph_page(request: Request, graph_id: int) -> HTMLResponse:
        try:
            graph = jobs.get_graph(graph_id)
        except GraphNotFound:
            return board.render(request, "graph_missing.html", status_code=404, graph_id=graph_id)
        return board.render(
            request, "graph.html", live_template="_graph_live.html", **graph_context(graph)
        )

    if read_only:
        return

    @pages.post("/graphs/{graph_id}/cancel", name="sqljobs_dashboard_cancel_graph")
    async def cancel_graph(request: Request, graph_id: int) -> Response:
        form = parse_form(await request.body())
        try:
            csrf.verify(request, form.get(FIELD))
        except CsrfError as exc:
            return board.render(
                request, "refused.html", status_code=403, reason=str(exc), job_id=graph_id
            )
        try:
            await run_in_threadpool(jobs.cancel_graph, graph_id)
        except GraphNotFound:
            return board.render(request, "graph_missing.html", status_code=404, graph_id=graph_id)
        target = str(request.url_for("sqljobs_dashboard_graph", graph_id=str(graph_id)).path)
        return RedirectResponse(f"{target}?notice=graph-cancelled", status_code=303)
