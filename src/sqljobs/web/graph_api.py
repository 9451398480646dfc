"""The JSON API of job graphs: ``GET /api/graphs/{id}`` (its jobs, their states and
dependencies) and ``POST /api/graphs/{id}/cancel``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from ..exceptions import GraphNotFound
from ..graphs import GraphSnapshot
from ..jobqueue import JobQueue
from ._schema_errors import ApiRoute
from .api import JobId, same_origin
from .schemas import JobSummary, Problem

_NO_GRAPH: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "no such graph"}
}


class GraphJob(JobSummary):
    """A job of a graph, with the ids of the jobs it waits for."""

    depends_on: list[int] = Field(description="ids of the jobs this one runs after")


class GraphOut(BaseModel):
    """A job graph: its policy, a summary state and every job."""

    id: int
    name: str | None
    on_failure: str = Field(description="'cancel' or 'continue'")
    state: str = Field(description="'running', 'completed' or 'failed'")
    created_at: datetime
    counts: dict[str, int] = Field(description="jobs per state")
    jobs: list[GraphJob]

    @classmethod
    def of(cls, graph: GraphSnapshot) -> GraphOut:
        return cls(
            id=graph.id,
            name=graph.name,
            on_failure=graph.on_failure,
            state=graph.state,
            created_at=graph.created_at,
            counts={state.value: n for state, n in graph.counts().items()},
            jobs=[
                GraphJob(**JobSummary.of(job).model_dump(), depends_on=graph.parents_of(job.id))
                for job in graph.jobs
            ],
        )


class CancelledOut(BaseModel):
    cancelled: list[int] = Field(description="ids of the jobs this cancel stopped")


def build_graph_api_router(jobs: JobQueue, *, read_only: bool) -> APIRouter:
    api = APIRouter(prefix="/api", tags=["sqljobs"], route_class=ApiRoute)

    @api.get(
        "/graphs/{graph_id}",
        response_model=GraphOut,
        responses=_NO_GRAPH,
        name="sqljobs_api_get_graph",
    )
    def get_graph(graph_id: JobId) -> GraphOut:
        """A job graph with each job's state and dependencies."""
        try:
            return GraphOut.of(jobs.get_graph(graph_id))
        except GraphNotFound:
            raise HTTPException(404, f"no job graph with id {graph_id}") from None

    if read_only:
        return api

    @api.post(
        "/graphs/{graph_id}/cancel",
        response_model=CancelledOut,
        responses=_NO_GRAPH,
        dependencies=[Depends(same_origin)],
        name="sqljobs_api_cancel_graph",
    )
    def cancel_graph(graph_id: JobId) -> CancelledOut:
        """Cancel every unfinished job of the graph; a running one can no longer commit."""
        try:
            return CancelledOut(cancelled=jobs.cancel_graph(graph_id))
        except GraphNotFound:
            raise HTTPException(404, f"no job graph with id {graph_id}") from None

    return api
