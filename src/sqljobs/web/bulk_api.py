"""The JSON API's bulk routes: retry, cancel or delete every job matching a filter (a dry run
by default), and pause or resume a queue. Mounted with the other mutating routes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BaseModel, Field

from .._bulk_admin import BulkResult
from .._utils import utcnow
from ..jobqueue import JobQueue
from ..jobs import JobState
from .schemas import Problem

Action = Literal["retry", "cancel", "delete"]
QueueName = Annotated[str, Path(min_length=1, max_length=100)]

BULK_REFUSED: dict[int | str, dict[str, Any]] = {
    403: {"model": Problem, "description": "cross-site request refused"},
    422: {"model": Problem, "description": "a state the action cannot touch, or a bad filter"},
}


class BulkRequest(BaseModel):
    """Which jobs a bulk operation touches, and whether to only count them."""

    state: list[JobState] | None = Field(
        None,
        description="default per action: retry discarded+cancelled, cancel scheduled+"
        "available+retryable, delete completed+discarded+cancelled",
    )
    queue: str | None = None
    task: str | None = None
    error_type: str | None = Field(
        None, description="type of the job's last error: its full or class name"
    )
    older_than: str | None = Field(None, description="created at least this long ago: 2h, 7d")
    newer_than: str | None = Field(None, description="created at most this long ago: 15m")
    created_after: datetime | None = Field(None, description="created at or after (aware)")
    created_before: datetime | None = Field(None, description="created before (aware)")
    dry_run: bool = Field(True, description="only count the matching jobs (the default)")
    batch_size: int = Field(200, ge=1, le=1000, description="jobs per transaction")


class BulkResultOut(BaseModel):
    """What a bulk operation did, or with ``dry_run`` would do."""

    action: Action
    dry_run: bool
    matched: int = Field(description="jobs matching the filter when the operation started")
    changed: int = Field(description="jobs retried, cancelled or deleted")
    changed_ids: list[int]
    skipped: dict[str, str] = Field(description="job id -> why it was left alone")
    batches: int

    @classmethod
    def of(cls, result: BulkResult) -> BulkResultOut:
        return cls(
            action=result.action,  # type: ignore[arg-type]
            dry_run=result.dry_run,
            matched=result.matched,
            changed=len(result.changed),
            changed_ids=result.changed,
            skipped={str(k): v for k, v in result.skipped.items()},
            batches=result.batches,
        )


class QueueState(BaseModel):
    queue: str
    paused: bool


def add_bulk_routes(
    api: APIRouter,
    jobs: JobQueue,
    same_origin: Any,
    parse_age_param: Callable[[str | None, str], timedelta | None],
) -> None:
    """Add the bulk and queue routes to the JSON API router ``api``."""

    @api.post(
        "/bulk/{action}",
        response_model=BulkResultOut,
        responses=BULK_REFUSED,
        dependencies=[Depends(same_origin)],
        name="sqljobs_api_bulk",
    )
    def bulk(action: Action, request: BulkRequest) -> BulkResultOut:
        """Retry, cancel or delete every job matching the filter, in batches; with
        ``dry_run`` (the default) only count them. A job a worker claimed or finished since
        the count is left as it is."""
        now = utcnow()
        older = parse_age_param(request.older_than, "older_than")
        newer = parse_age_param(request.newer_than, "newer_than")
        before = request.created_before or (now - older if older is not None else None)
        after = request.created_after or (now - newer if newer is not None else None)
        try:
            result = jobs.bulk(
                action,
                state=request.state,
                queue=request.queue,
                task=request.task,
                error_type=request.error_type,
                created_after=after,
                created_before=before,
                dry_run=request.dry_run,
                batch_size=request.batch_size,
            )
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return BulkResultOut.of(result)

    @api.post(
        "/queues/{queue:path}/pause",
        response_model=QueueState,
        responses=BULK_REFUSED,
        dependencies=[Depends(same_origin)],
        name="sqljobs_api_pause_queue",
    )
    def pause(queue: QueueName) -> QueueState:
        """Stop every worker claiming this queue's jobs (within one poll); enqueues go on."""
        _change_queue(jobs, queue, paused=True)
        return QueueState(queue=queue, paused=True)

    @api.post(
        "/queues/{queue:path}/resume",
        response_model=QueueState,
        responses=BULK_REFUSED,
        dependencies=[Depends(same_origin)],
        name="sqljobs_api_resume_queue",
    )
    def resume(queue: QueueName) -> QueueState:
        """Let workers claim this queue's jobs again."""
        _change_queue(jobs, queue, paused=False)
        return QueueState(queue=queue, paused=False)


def _change_queue(jobs: JobQueue, queue: str, *, paused: bool) -> None:
    try:
        if paused:
            jobs.pause_queue(queue)
        else:
            jobs.resume_queue(queue)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
