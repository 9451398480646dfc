"""What running one job produced, as plain values the worker then persists."""

from __future__ import annotations

from dataclasses import dataclass
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
    """The attempt failed; retry at ``retry_at``, or discard the job when it is None."""

    error: JobError
    retry_at: datetime | None


@dataclass(frozen=True, slots=True)
class Cancelled:
    error: JobError


@dataclass(frozen=True, slots=True)
class Snoozed:
    run_at: datetime


@dataclass(frozen=True, slots=True)
class LeaseLost:
    """Another worker or an operator took the job over; nothing of this attempt was kept."""


Outcome = Completed | Failed | Cancelled | Snoozed | LeaseLost
