"""What running one job produced, as plain values the worker then persists."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..jobs import JobError


@dataclass(frozen=True, slots=True)
class Completed:
    """The task returned. ``persisted``: its session already committed the completion."""

    result: Any
    persisted: bool


@dataclass(frozen=True, slots=True)
class Failed:
    """The attempt failed; retry at ``retry_at``, or discard the job when it is None.
    ``exception`` is what the task raised (for error reporters), when there was one."""

    error: JobError
    retry_at: datetime | None
    exception: BaseException | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Cancelled:
    error: JobError


@dataclass(frozen=True, slots=True)
class Snoozed:
    """Back to the queue for ``run_at``, the attempt not counted; ``note`` is recorded with
    the job's errors (e.g. its arguments do not fit this worker's version of the task)."""

    run_at: datetime
    note: JobError | None = None


@dataclass(frozen=True, slots=True)
class LeaseLost:
    """Another worker or an operator took the job over; nothing of this attempt was kept."""


Outcome = Completed | Failed | Cancelled | Snoozed | LeaseLost
