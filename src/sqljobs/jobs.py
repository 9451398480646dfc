"""Job data: the states a job moves through and the snapshot read back from the store."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class JobState(str, enum.Enum):
    """Where a job is in its life.

    ``scheduled`` → ``available`` → ``running`` → ``completed``, or ``retryable`` (and back
    to ``running``), ``discarded`` after the last attempt, or ``cancelled``.
    """

    SCHEDULED = "scheduled"
    AVAILABLE = "available"
    RUNNING = "running"
    RETRYABLE = "retryable"
    COMPLETED = "completed"
    DISCARDED = "discarded"
    CANCELLED = "cancelled"

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

    @property
    def last_error(self) -> JobError | None:
        return self.errors[-1] if self.errors else None
