"""Job data: the states a job moves through and the snapshot read back from the store."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class JobState(str, enum.Enum):
    """Where a job is in its life.

    ``scheduled`` → ``available`` → ``running`` → ``completed``, or ``retryable`` (and back
    to ``running``), ``discarded`` after the last attempt, or ``cancelled``. A job of a graph
    with dependencies starts ``blocked`` and becomes ``available`` (or ``scheduled``) when
    they have all finished (docs/workflows.md).
    """

    SCHEDULED = "scheduled"
    AVAILABLE = "available"
    RUNNING = "running"
    RETRYABLE = "retryable"
    COMPLETED = "completed"
    DISCARDED = "discarded"
    CANCELLED = "cancelled"
    #: Waits for its dependencies (a job graph); no worker claims it.
    BLOCKED = "blocked"

    def __str__(self) -> str:
        return self.value

    @property
    def is_finished(self) -> bool:
        return self in FINISHED_STATES


#: States from which a worker may claim a job once its ``run_at`` has passed.
PENDING_STATES = frozenset({JobState.SCHEDULED, JobState.AVAILABLE, JobState.RETRYABLE})
#: States a job never leaves on its own.
FINISHED_STATES = frozenset({JobState.COMPLETED, JobState.DISCARDED, JobState.CANCELLED})


@dataclass(frozen=True, slots=True)
class JobError:
    """One failed attempt, as recorded on the job row."""

    attempt: int
    at: datetime
    type: str
    message: str
    traceback: str

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "at": self.at.isoformat(),
            "type": self.type,
            "message": self.message,
            "traceback": self.traceback,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobError:
        return cls(
            attempt=int(data.get("attempt", 0)),
            at=datetime.fromisoformat(str(data.get("at"))),
            type=str(data.get("type", "")),
            message=str(data.get("message", "")),
            traceback=str(data.get("traceback", "")),
        )


@dataclass(frozen=True, slots=True)
class Job:
    """A snapshot of one job row. Read it with ``jobs.get(job_id)``; it does not update itself."""

    id: int
    task: str
    queue: str
    args: Any
    state: JobState
    priority: int
    attempt: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    result: Any = None
    errors: tuple[JobError, ...] = field(default=())
    #: Fraction done (0..1) and a message, as last reported by ``ctx.set_progress``.
    progress: float | None = None
    progress_message: str | None = None
    unique_key: str | None = None
    unique_scope: str | None = None
    #: The key of the job's :class:`~sqljobs.KeyLimit` (None: no per-key limit).
    flow_key: str | None = None
    #: The job graph it belongs to (``jobs.get_graph(graph_id)``), None if none.
    graph_id: int | None = None
    #: The W3C trace context of the enqueue (``{"traceparent": ...}``) when tracing was on
    #: (docs/tracing.md); None otherwise.
    trace_context: dict[str, str] | None = None

    @property
    def last_error(self) -> JobError | None:
        return self.errors[-1] if self.errors else None


@dataclass(frozen=True, slots=True)
class FlowRule:
    """A job's per-key flow control as stored on its row: its key and the key's limits."""

    key: str
    #: Most running jobs of the key at once (None: no concurrency limit).
    limit: int | None = None
    #: One at a time, in enqueue order; a waiting or retrying head blocks the key.
    fifo: bool = False
    #: Most starts of the key per ``period`` seconds (None: no rate limit).
    rate: int | None = None
    period: float | None = None


@dataclass(frozen=True, slots=True)
class NewJob:
    """A row to insert, already validated."""

    task: str
    args: dict[str, Any]
    queue: str
    priority: int
    max_attempts: int
    run_at: datetime | None = None
    #: Enqueueing a job whose key is already held returns that job instead of a new one.
    unique_key: str | None = None
    #: How long the key is held: while the job is "waiting" (not started), "active" (waiting
    #: or running), or for "all" its life (until pruned).
    unique_scope: str | None = None
    #: Per-key flow control (see :class:`~sqljobs.KeyLimit`): the key, and its rule.
    flow: FlowRule | None = None
    #: Debounce: seconds from the database's now until the job runs; a pending job holding
    #: ``unique_key`` (scope "debounce") gets these arguments and that run time instead.
    debounce_window: float | None = None
    #: The W3C trace context to store with the job (set by tracing, docs/tracing.md).
    trace_context: dict[str, str] | None = None

    def values(self, now: datetime) -> dict[str, Any]:
        run_at = self.run_at or now
        flow = self.flow
        return {
            "flow_key": flow.key if flow else None,
            "flow_limit": flow.limit if flow else None,
            "flow_fifo": flow.fifo if flow else None,
            "flow_rate": flow.rate if flow else None,
            "flow_period": flow.period if flow else None,
            "unique_key": self.unique_key,
            "unique_scope": self.unique_scope if self.unique_key else None,
            "task": self.task,
            "args": self.args,
            "queue": self.queue,
            "priority": self.priority,
            "max_attempts": self.max_attempts,
            "attempt": 0,
            # A debounced job always waits for its window (the store sets its run time).
            "state": (
                JobState.SCHEDULED
                if run_at > now or self.debounce_window is not None
                else JobState.AVAILABLE
            ).value,
            "run_at": run_at,
            "created_at": now,
            "errors": [],
            "trace_context": self.trace_context,
        }
