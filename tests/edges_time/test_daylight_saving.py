"""Issue 12, case 5: periodic slots across daylight-saving changes run exactly once each.

A simulated clock walks minute by minute through each transition night; two "workers" (each
its own Schedule, as each worker process has) ask for the due slot every minute and enqueue
what they get. The database keeps one job per slot; these tests count them per wall time and
per UTC instant. No real waiting.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from sqljobs import JobQueue
from sqljobs.periodic import Schedule

MINUTE = timedelta(minutes=1)

# The slots are computed in Python; what the database adds (one job per slot key, however many
# workers enqueue it) is the same rule on every database and is tested on each by
# tests/worker/test_scheduling.py::test_periodic_slots_are_enqueued_once_each.
pytestmark = [
    pytest.mark.dialects(
        "sqlite", reason="slot arithmetic; one-job-per-slot is tested per database elsewhere"
    ),
    pytest.mark.slow,  # walks whole days minute by minute
]


def local_day(zone: str, day: date) -> tuple[datetime, datetime]:
    """The UTC instants of ``day``'s local midnight and of the next day's."""
    tz = ZoneInfo(zone)
    start = datetime.combine(day, time(0), tz).astimezone(timezone.utc)
    end = datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(timezone.utc)
    return start, end


def walk(jobs: JobQueue, cron: str, zone: str, day: date) -> list[datetime]:
    """Walk ``day`` (local) minute by minute with two workers' schedules enqueueing their due
    slots; return the slots of the jobs stored (UTC), checking that no worker's due slot ever
    went back in time."""

    @jobs.task(name=f"nightly-{zone}-{cron}")
    def nightly() -> None:
        pass

    schedules = [Schedule(task=nightly, cron=cron, timezone=zone) for _ in range(2)]
    start, end = local_day(zone, day)
    now = start - MINUTE  # the slot before the day, so it is not counted
    for schedule in schedules:
        schedule.due(now)
    latest = {id(s): s.latest_slot(now) for s in schedules}
    went_back: list[tuple[datetime, datetime]] = []
    while now < end - MINUTE:
        now += MINUTE
        for schedule in schedules:
            slot = schedule.latest_slot(now)
            if slot < latest[id(schedule)]:
                went_back.append((now, slot))
            latest[id(schedule)] = max(slot, latest[id(schedule)])
            job = schedule.due(now)
            if job is not None:
                jobs.store.enqueue(None, [job])
    assert went_back == []
    return sorted(j.run_at for j in jobs.list_jobs(task=nightly.name, limit=1000))


def wall(instant: datetime, zone: str) -> str:
    return instant.astimezone(ZoneInfo(zone)).strftime("%H:%M%z")


@pytest.mark.parametrize(
    ("zone", "cron", "day", "expected"),
    [
        # Spring forward: the wall time does not exist; it runs right after the gap.
        ("Europe/Paris", "30 2 * * *", date(2026, 3, 29), "03:00+0200"),
        ("America/New_York", "30 2 * * *", date(2026, 3, 8), "03:00-0400"),
        ("Australia/Lord_Howe", "15 2 * * *", date(2026, 10, 4), "02:30+1100"),
        # Fall back: the wall time happens twice; it runs at its first occurrence only.
        ("Europe/Paris", "30 2 * * *", date(2026, 10, 25), "02:30+0200"),
        ("America/New_York", "30 1 * * *", date(2026, 11, 1), "01:30-0400"),
        ("Australia/Lord_Howe", "45 1 * * *", date(2026, 4, 5), "01:45+1100"),
        # An ordinary night, for comparison.
        ("Europe/Paris", "30 2 * * *", date(2026, 7, 1), "02:30+0200"),
    ],
)
def test_a_nightly_cron_runs_once_across_daylight_saving_changes(
    jobs: JobQueue, zone: str, cron: str, day: date, expected: str
) -> None:
    slots = walk(jobs, cron, zone, day)
    assert [wall(s, zone) for s in slots] == [expected]


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("Europe/Paris", date(2026, 3, 29), 23),
        ("Europe/Paris", date(2026, 10, 25), 25),
        ("America/New_York", date(2026, 3, 8), 23),
        ("America/New_York", date(2026, 11, 1), 25),
        ("Europe/Paris", date(2026, 7, 1), 24),
    ],
)
def test_an_hourly_cron_runs_once_per_real_hour_across_daylight_saving_changes(
    jobs: JobQueue, zone: str, day: date, hours: int
) -> None:
    slots = walk(jobs, "0 * * * *", zone, day)
    assert len(slots) == len(set(slots)) == hours
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(slots))
    per_wall = Counter(wall(s, zone)[:5] for s in slots)
    assert max(per_wall.values()) <= 2  # the repeated hour, once per real occurrence


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        # 02:00 is skipped (02:00 -> 02:30): that slot runs at 02:30, the others on the hour.
        (date(2026, 10, 4), ["00:00+1030", "01:00+1030", "02:30+1100", "03:00+1100"]),
        # 01:30-02:00 happens twice; no slot on the hour falls in it.
        (date(2026, 4, 5), ["00:00+1100", "01:00+1100", "02:00+1030", "03:00+1030"]),
    ],
)
def test_an_hourly_cron_across_lord_howes_half_hour_shift(
    jobs: JobQueue, day: date, expected: list[str]
) -> None:
    slots = walk(jobs, "0 * * * *", "Australia/Lord_Howe", day)
    assert len(slots) == len(set(slots)) == 24
    assert [wall(s, "Australia/Lord_Howe") for s in slots[:4]] == expected


def test_the_due_slot_never_goes_back_a_day_after_fall_back(offline_jobs: JobQueue) -> None:
    @offline_jobs.task
    def nightly() -> None:
        pass

    paris = Schedule(task=nightly, cron="30 2 * * *", timezone="Europe/Paris")
    first = datetime(2026, 10, 25, 0, 30, tzinfo=timezone.utc)  # 02:30 CEST
    second = datetime(2026, 10, 25, 1, 30, tzinfo=timezone.utc)  # 02:30 CET, again
    for now in (first, first + MINUTE, second - MINUTE, second, second + 15 * MINUTE):
        assert paris.latest_slot(now) == first
    assert paris.next_slot(first) == datetime(2026, 10, 26, 1, 30, tzinfo=timezone.utc)
    assert paris.due(first) is not None
    assert paris.due(second + 15 * MINUTE) is None
