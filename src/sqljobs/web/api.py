"""The JSON API: list, filter and page jobs, job detail, queue stats, throughput; retry,
cancel and delete, one job or every match (``bulk_api``), pause and resume queues (mounted
only with an auth dependency, see :func:`sqljobs.fastapi.router`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Union

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel

from .. import _overview
from .._overview import ActionRefused
from .._utils import utcnow
from ..exceptions import JobNotFound
from ..jobqueue import JobQueue
from ..jobs import Job, JobState
from ..store import JobFilters
from ._csrf import CsrfError, check_same_origin
from ._schema_errors import ApiRoute
from .bulk_api import add_bulk_routes
from .schemas import JobDetail, JobPage, JobSummary, Problem, Stats, ThroughputOut

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem, "description": "no such job"}}


class InvalidParameters(BaseModel):
    """FastAPI's own 422: a list of validation errors."""

    detail: list[dict[str, Any]]


#: Job ids and offsets are 64-bit signed integers in every database: a bigger number in the
#: URL is a 422, not an overflow (500) in the driver.
MAX_INT64 = 2**63 - 1
JobId = Annotated[int, Path(ge=-MAX_INT64 - 1, le=MAX_INT64)]

#: Ages and windows are checked in the route (422 with a ``detail`` string) after FastAPI's
#: own parameter checks (422 with a list): document both shapes.
BAD_QUERY: dict[int | str, dict[str, Any]] = {
    422: {"model": Union[Problem, InvalidParameters], "description": "invalid parameters"}  # noqa: UP007
}
REFUSED: dict[int | str, dict[str, Any]] = {
    403: {"model": Problem, "description": "cross-site request refused"},
    404: {"model": Problem, "description": "no such job"},
    409: {"model": Problem, "description": "the job's state does not allow this"},
}


def parse_age_param(value: str | None, name: str) -> timedelta | None:
    if value is None or value == "":
        return None
    try:
        return _overview.parse_age(value)
    except ValueError as exc:
        raise HTTPException(422, f"{name}: {exc}") from None


def filters_from(
    state: list[JobState] | None,
    queue: str | None,
    task: str | None,
    older_than: str | None,
    newer_than: str | None,
) -> JobFilters:
    for name, text in (("queue", queue), ("task", task)):
        if text is not None and "\x00" in text:  # PostgreSQL refuses NUL in text: a 500
            raise HTTPException(422, f"{name}: must not contain NUL characters")
    older = parse_age_param(older_than, "older_than")
    newer = parse_age_param(newer_than, "newer_than")
    now = utcnow()
    return JobFilters(
        states=state or None,
        queue=queue or None,
        task=task or None,
        created_before=now - older if older is not None else None,
        created_after=now - newer if newer is not None else None,
    )


def same_origin(request: Request) -> None:
    """Mutations from another site are refused even when auth rides on cookies."""
    try:
        check_same_origin(request)
    except CsrfError as exc:
        raise HTTPException(403, str(exc)) from None


def run_action(action: Any, jobs: JobQueue, job_id: int) -> Job:
    try:
        job: Job = action(jobs, job_id)
    except JobNotFound:
        raise HTTPException(404, f"no job with id {job_id}") from None
    except ActionRefused as exc:
        raise HTTPException(409, str(exc)) from None
    return job


def build_api_router(jobs: JobQueue, *, read_only: bool) -> APIRouter:
    api = APIRouter(prefix="/api", tags=["sqljobs"], route_class=ApiRoute)

    @api.get("/jobs", response_model=JobPage, responses=BAD_QUERY, name="sqljobs_api_list_jobs")
    def list_jobs(
        state: Annotated[list[JobState] | None, Query(description="repeat for several")] = None,
        queue: str | None = None,
        task: str | None = None,
        older_than: Annotated[
            str | None, Query(description="created at least this long ago, e.g. 15m, 2h, 7d")
        ] = None,
        newer_than: Annotated[
            str | None, Query(description="created at most this long ago, e.g. 15m, 2h, 7d")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_INT64)] = 0,
    ) -> JobPage:
        """Jobs, newest first, filtered and paged; ``total`` counts every match."""
        filters = filters_from(state, queue, task, older_than, newer_than)
        found, total = jobs.store.search_jobs(filters, limit=limit, offset=offset)
        return JobPage(
            items=[JobSummary.of(j) for j in found], total=total, limit=limit, offset=offset
        )

    @api.get(
        "/jobs/{job_id}",
        response_model=JobDetail,
        responses=NOT_FOUND,
        name="sqljobs_api_get_job",
    )
    def get_job(job_id: JobId) -> JobDetail:
        """One job with its arguments, result, attempts, every recorded error, its
        durable steps (name, state, attempts, duration, error) and the log lines of its
        attempts (docs/logs.md)."""
        try:
            return JobDetail.of(jobs.get(job_id), jobs.steps(job_id), jobs.logs(job_id))
        except JobNotFound:
            raise HTTPException(404, f"no job with id {job_id}") from None

    @api.get("/stats", response_model=Stats, name="sqljobs_api_stats")
    def stats() -> Stats:
        """Counts per queue and state, totals, backlog age per queue and live workers."""
        return Stats.of(_overview.overview(jobs))

    @api.get(
        "/throughput",
        response_model=ThroughputOut,
        responses=BAD_QUERY,
        name="sqljobs_api_throughput",
    )
    def throughput(
        window: Annotated[str, Query(description="how far back, e.g. 1h")] = "1h",
        buckets: Annotated[int, Query(ge=1, le=500)] = 60,
    ) -> ThroughputOut:
        """Jobs finished (completed, discarded, cancelled) per interval over ``window``."""
        span = parse_age_param(window, "window") or timedelta(hours=1)
        if span.total_seconds() < 1 or span > timedelta(days=90):
            raise HTTPException(422, "window: must be between 1s and 90d")
        return ThroughputOut.of(_overview.throughput(jobs, window=span, buckets=buckets))

    if read_only:
        return api

    @api.post(
        "/jobs/{job_id}/retry",
        response_model=JobDetail,
        responses=REFUSED,
        dependencies=[Depends(same_origin)],
        name="sqljobs_api_retry_job",
    )
    def retry_job(job_id: JobId) -> JobDetail:
        """Run a job again now (one more attempt if it used them all); 409 while it runs."""
        return JobDetail.of(run_action(_overview.retry_job, jobs, job_id))

    @api.post(
        "/jobs/{job_id}/cancel",
        response_model=JobDetail,
        responses=REFUSED,
        dependencies=[Depends(same_origin)],
        name="sqljobs_api_cancel_job",
    )
    def cancel_job(job_id: JobId) -> JobDetail:
        """Cancel a job that has not finished; a running job can no longer commit."""
        return JobDetail.of(run_action(_overview.cancel_job, jobs, job_id))

    @api.delete(
        "/jobs/{job_id}",
        status_code=204,
        response_class=Response,
        responses=REFUSED,
        dependencies=[Depends(same_origin)],
        name="sqljobs_api_delete_job",
    )
    def delete_job(job_id: JobId) -> Response:
        """Delete a job that is not running (cancel it first)."""
        run_action(_overview.delete_job, jobs, job_id)
        return Response(status_code=204)

    add_bulk_routes(api, jobs, same_origin, parse_age_param)
    return api
