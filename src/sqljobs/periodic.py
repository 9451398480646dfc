"""Periodic (cron) jobs, enqueued exactly once per slot however many workers run.

Every worker computes the latest cron slot and enqueues it with a unique key made of the
task name and the slot time (``Unique(scope="all")``): the database's unique index lets exactly
one insert win, so no leader election is needed and no slot runs twice. Keys stay until
finished jobs are pruned (prune after longer than the shortest cron interval).

A slot's identity is its UTC instant (the unique key is made from it), so daylight-saving
changes cannot make one slot two: a wall time skipped by a spring-forward gap runs once, at
the first instant after the gap; a wall time that happens twice (fall back) runs once, at its
first occurrence, unless the minute or hour field starts with ``*`` (Vixie cron's "wildcard
jobs": ``0 * * * *`` runs once per real hour, 25 times on a fall-back day, 23 on a
spring-forward one). The due slot never goes back in time.

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
#: Longer than any zone's daylight-saving shift (two hours at most): a change of UTC offset
#: this close to ``now`` can reorder wall-clock slots around it.
_NEAR = timedelta(hours=3)


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

    task: Task[..., Any]
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
        minute, hour = croniter(self.cron).expressions[:2]
        self._repeats = minute.startswith("*") or hour.startswith("*")

    def latest_slot(self, now: datetime) -> datetime:
        """The most recent slot at or before ``now``, in UTC (see :func:`slot_instants`)."""
        local, shift = _wall(now, self._zone), _shift_near(now, self._zone)
        walls = _croniter()(self.cron, local + shift + timedelta(microseconds=1))
        latest: datetime | None = None
        while True:
            wall: datetime = walls.get_prev(datetime)
            for instant in slot_instants(wall, self._zone, repeats=self._repeats):
                if instant <= now and (latest is None or instant > latest):
                    latest = instant
            # Earlier wall slots map to earlier instants than any found so far.
            if latest is not None and wall <= local - shift:
                return latest

    def next_slot(self, now: datetime) -> datetime:
        """The first slot after ``now``, in UTC."""
        local, shift = _wall(now, self._zone), _shift_near(now, self._zone)
        walls = _croniter()(self.cron, local - shift)
        upcoming: datetime | None = None
        while True:
            wall: datetime = walls.get_next(datetime)
            for instant in slot_instants(wall, self._zone, repeats=self._repeats):
                if instant > now and (upcoming is None or instant < upcoming):
                    upcoming = instant
            if upcoming is not None and wall >= local + shift:
                return upcoming

    def due(self, now: datetime | None = None) -> NewJob | None:
        """The job for the latest slot if this process has not enqueued it (or a later one)."""
        now = now or utcnow()
        slot = self.latest_slot(now)
        if self._last_slot is not None and slot <= self._last_slot:
            return None  # already handled; and never go back to an earlier slot
        self._last_slot = slot
        if self.missed == "skip" and now - slot > SKIP_AFTER:
            return None
        # A slot's identity is its UTC instant, whatever wall time named it.
        key = key_digest(f"periodic:{self.task.name}:{slot.isoformat()}")
        job = self.task.prepare(run_at=slot, **self.args)
        return replace(job, unique_key=key, unique_scope="all")


def slot_instants(wall: datetime, zone: ZoneInfo, *, repeats: bool) -> list[datetime]:
    """The UTC instants a cron slot at local wall time ``wall`` (naive) stands for.

    A wall time that exists once is one instant. One skipped by a spring-forward gap runs once
    at the first instant after the gap. One that happens twice (fall-back) runs at its first
    occurrence, and at the second too only if ``repeats`` (the schedule's minute or hour field
    starts with ``*``, Vixie cron's "wildcard jobs"): ``0 * * * *`` runs once per real hour,
    ``30 2 * * *`` once a night.
    """
    first = wall.replace(tzinfo=zone, fold=0).astimezone(timezone.utc)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(timezone.utc)
    if first == second:
        return [first]
    if _wall(first, zone) == wall:  # it exists: twice
        return [first, second] if repeats else [first]
    # In a gap, fold=1 reads the wall time with the offset after the change, fold=0 with the
    # one before: the change happened between the two.
    return [_change_between(second, first, zone)]


def _change_between(before: datetime, after: datetime, zone: ZoneInfo) -> datetime:
    """The first instant in (``before``, ``after``] with ``after``'s UTC offset."""
    offset = after.astimezone(zone).utcoffset()
    low, high = 0, int((after - before).total_seconds())
    while high - low > 1:  # zone changes happen on whole seconds
        middle = (low + high) // 2
        if (before + timedelta(seconds=middle)).astimezone(zone).utcoffset() == offset:
            high = middle
        else:
            low = middle
    return before + timedelta(seconds=high)


def _shift_near(instant: datetime, zone: ZoneInfo) -> timedelta:
    """How much ``zone``'s UTC offset changes within ``_NEAR`` of ``instant`` (usually 0)."""
    offsets = [(instant + d).astimezone(zone).utcoffset() for d in (-_NEAR, timedelta(0), _NEAR)]
    known = [offset for offset in offsets if offset is not None]
    return max(known) - min(known)


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    """``instant``'s local wall time in ``zone``, naive (cron matches wall times)."""
    return instant.astimezone(zone).replace(tzinfo=None)
