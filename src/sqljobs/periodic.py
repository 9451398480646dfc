"""Periodic (cron) jobs, enqueued exactly once per slot however many workers run.

Every worker computes the latest cron slot and enqueues it with a unique key made of the
task name and the slot time (``Unique(scope="all")``): the database's unique index lets exactly
one insert win, so no leader election is needed and no slot runs twice. Keys stay until
finished jobs are pruned (prune after longer than the shortest cron interval).

Missed slots (no worker was running): with ``missed="latest"`` (default) the most recent slot
runs once when a worker comes back, older ones are skipped; with ``missed="skip"`` slots more
than a minute old are never enqueued.

Example:
    >>> @jobs.periodic("*/5 * * * *", timezone="Europe/Paris")               # doctest: +SKIP
    ... def refresh_rates(session: Session) -> None: ...
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._utils import utcnow
from .exceptions import ConfigurationError
from .jobs import NewJob
from .unique import key_digest

if TYPE_CHECKING:
    from .registry import Task

log = logging.getLogger("sqljobs.periodic")

Missed = Literal["latest", "skip"]
#: With ``missed="skip"``, how old a slot may be and still be enqueued.
SKIP_AFTER = timedelta(minutes=1)


def _croniter() -> Any:
    try:
        from croniter import croniter  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            "periodic jobs need croniter: pip install 'sqljobs[cron]'"
        ) from None
    return croniter


@dataclass
class Schedule:
    """One periodic task: its cron expression, zone, arguments and missed-slot policy."""

    task: Task[Any]
    cron: str
    timezone: str = "UTC"
    args: dict[str, Any] = field(default_factory=dict)
    missed: Missed = "latest"
    _last_slot: datetime | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        croniter = _croniter()
        if not croniter.is_valid(self.cron):
            raise ConfigurationError(
                f"{self.cron!r} is not a cron expression (e.g. '*/5 * * * *' for every 5 "
                "minutes; fields: minute hour day-of-month month day-of-week)"
            )
        try:
            self._zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(
                f"unknown timezone {self.timezone!r}; use an IANA name like 'Europe/Paris'"
            ) from None
        if self.missed not in ("latest", "skip"):
            raise ConfigurationError(f"missed must be 'latest' or 'skip', not {self.missed!r}")
        self.task.arguments.validate(self.args)

    def latest_slot(self, now: datetime) -> datetime:
        """The most recent slot at or before ``now``, in UTC."""
        local = now.astimezone(self._zone)
        iterator = _croniter()(self.cron, local + timedelta(microseconds=1))
        previous: datetime = iterator.get_prev(datetime)
        return previous.astimezone(timezone.utc)

    def next_slot(self, now: datetime) -> datetime:
        iterator = _croniter()(self.cron, now.astimezone(self._zone))
        upcoming: datetime = iterator.get_next(datetime)
        return upcoming.astimezone(timezone.utc)

    def due(self, now: datetime | None = None) -> NewJob | None:
        """The job for the latest slot if this process has not enqueued it yet."""
        now = now or utcnow()
        slot = self.latest_slot(now)
        if slot == self._last_slot:
            return None
        self._last_slot = slot
        if self.missed == "skip" and now - slot > SKIP_AFTER:
            return None
        key = key_digest(f"periodic:{self.task.name}:{slot.isoformat()}")
        job = self.task.prepare(run_at=slot, **self.args)
        return replace(job, unique_key=key, unique_scope="all")
