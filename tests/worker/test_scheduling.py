"""Delays, per-queue limits, rate limits, pruning and periodic slots, on every database."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from sqljobs import ConfigurationError, JobQueue, JobState
from sqljobs.periodic import Schedule
from tests.helpers import eventually, finished


class Overlap:
    """Records how many tasks of each kind run at once."""

    def __init__(self) -> None:
        self.active: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.lock = threading.Lock()

    def run(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.active[kind] = self.active.get(kind, 0) + 1
            self.peak[kind] = max(self.peak.get(kind, 0), self.active[kind])
        time.sleep(seconds)
        with self.lock:
            self.active[kind] -= 1


def test_a_delayed_job_runs_once_due_and_never_before(jobs: JobQueue) -> None:
    # How soon after run_at a job starts is pickup latency: bench/ measures it (W3).
    @jobs.task
    def later() -> None:
        pass

    due_soon = later.configure(delay=0.5).enqueue()
    due_in_an_hour = later.configure(delay=3600).enqueue()
    with jobs.worker(concurrency=1, poll_interval=0.05):
        job = eventually(lambda: (j := jobs.get(due_soon)).state is JobState.COMPLETED and j)
        assert jobs.get(due_in_an_hour).state is JobState.SCHEDULED
    assert job.started_at is not None and job.started_at >= job.run_at


def test_per_queue_limits_inside_one_worker(jobs: JobQueue) -> None:
    overlap = Overlap()

    @jobs.task(queue="serial")
    def one_at_a_time() -> None:
        overlap.run("serial", 0.05)

    @jobs.task(queue="wide")
    def many() -> None:
        overlap.run("wide", 0.05)

    ids = jobs.enqueue_many(None, [one_at_a_time.prepare() for _ in range(8)])
    ids += jobs.enqueue_many(None, [many.prepare() for _ in range(12)])
    with jobs.worker(queues={"serial": 1, "wide": None}, concurrency=4, poll_interval=0.02):
        eventually(lambda: finished(jobs, *ids))
    assert overlap.peak["serial"] == 1
    assert overlap.peak["wide"] >= 2


@pytest.mark.slow
def test_a_global_limit_holds_across_workers(jobs: JobQueue) -> None:
    overlap = Overlap()

    @jobs.task(queue="scarce")
    def scarce() -> None:
        overlap.run("scarce", 0.05)

    jobs.configure_queue("scarce", global_limit=2)
    ids = jobs.enqueue_many(None, [scarce.prepare() for _ in range(24)])
    workers = [jobs.worker(concurrency=3, poll_interval=0.02) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        eventually(lambda: finished(jobs, *ids), timeout=60)
    finally:
        for worker in workers:
            worker.stop()
    assert overlap.peak["scarce"] == 2


def test_a_rate_limit_admits_its_count_per_period_then_the_next_period_more(
    jobs: JobQueue,
) -> None:
    """The rule, on the store's claims (no timing measured): a window admits 3 claims, a
    claim inside the same window gets none, the next window admits 3 more."""

    @jobs.task(queue="metered")
    def metered() -> None:
        pass

    jobs.configure_queue("metered", rate_limit=(3, 2.0))
    jobs.enqueue_many(None, [metered.prepare() for _ in range(9)])

    def claim() -> list[int]:
        claimed = jobs.store.claim_limited(
            worker_id="w", queue="metered", limit=9, lease=timedelta(seconds=30)
        )
        return [job.id for job in claimed]

    assert len(claim()) == 3
    assert claim() == []  # the same 2 s window: full
    later = eventually(claim, timeout=30)  # once the next window opens
    assert len(later) == 3


def test_a_rate_limited_queue_runs_all_its_jobs_and_runs_freely_once_lifted(
    jobs: JobQueue,
) -> None:
    @jobs.task(queue="metered")
    def metered() -> None:
        pass

    jobs.configure_queue("metered", rate_limit=(3, 0.2))
    ids = jobs.enqueue_many(None, [metered.prepare() for _ in range(9)])
    with jobs.worker(concurrency=4, poll_interval=0.02):
        eventually(lambda: finished(jobs, *ids), timeout=30)
    assert {jobs.get(i).state for i in ids} == {JobState.COMPLETED}
    jobs.configure_queue("metered")  # lifted
    again = jobs.enqueue_many(None, [metered.prepare() for _ in range(9)])
    assert jobs.drain().completed == again


def test_limits_are_checked(jobs: JobQueue) -> None:
    with pytest.raises(ConfigurationError, match="at least 1"):
        jobs.configure_queue("q", global_limit=0)
    with pytest.raises(ConfigurationError, match="at least 1"):
        jobs.worker(queues={"q": 0})


def test_workers_prune_old_finished_jobs(jobs: JobQueue) -> None:
    @jobs.task
    def quick() -> None:
        pass

    done = quick.enqueue()
    jobs.drain()
    waiting = quick.configure(delay=3600).enqueue()
    # Pruning keeps its own interval, even one much shorter than the rescue interval.
    with jobs.worker(
        concurrency=1,
        poll_interval=0.02,
        prune_after=0,
        prune_interval=0.1,
        rescue_interval=3600,
        heartbeat_interval=0.1,
    ):
        eventually(lambda: not jobs.list_jobs(state="completed"), timeout=20)
    assert [j.id for j in jobs.list_jobs()] == [waiting]
    assert done not in [j.id for j in jobs.list_jobs()]


def test_periodic_slots_are_enqueued_once_each(jobs: JobQueue) -> None:
    runs: list[int] = []

    @jobs.periodic("* * * * * */1")  # every second (croniter's optional seconds field)
    def tick() -> None:
        runs.append(1)

    workers = [
        jobs.worker(concurrency=1, poll_interval=0.05, heartbeat_interval=0.1) for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    try:
        # Three workers race for each slot as it comes; wait for four slots to pass. Read
        # the slots while the workers run: stopping releases jobs they claimed ahead, and a
        # released job is due at once (its run_at becomes the release time).
        slots = eventually(
            lambda: len(found := [j.run_at for j in jobs.list_jobs(task=tick.name)]) >= 4 and found,
            timeout=60,
        )
    finally:
        for worker in workers:
            worker.stop()
    assert len(slots) == len(set(slots)) >= 4  # one job per slot, 3 workers or not
    assert all(s.microsecond == 0 for s in slots)


def test_schedule_slots_timezones_and_missed_policy(offline_jobs: JobQueue) -> None:
    @offline_jobs.task
    def nightly() -> None:
        pass

    paris = Schedule(task=nightly, cron="0 3 * * *", timezone="Europe/Paris")
    now = datetime(2026, 7, 1, 12, 0, tzinfo=timezone.utc)
    assert paris.latest_slot(now) == datetime(2026, 7, 1, 1, 0, tzinfo=timezone.utc)  # CEST
    assert paris.next_slot(now) == datetime(2026, 7, 2, 1, 0, tzinfo=timezone.utc)
    job = paris.due(now)
    assert job is not None and job.run_at == datetime(2026, 7, 1, 1, 0, tzinfo=timezone.utc)
    assert paris.due(now + timedelta(minutes=5)) is None  # same slot: already handled
    skipping = Schedule(task=nightly, cron="0 3 * * *", timezone="Europe/Paris", missed="skip")
    assert skipping.due(now) is None  # the slot was 11 hours ago
    assert skipping.due(datetime(2026, 7, 2, 1, 0, 30, tzinfo=timezone.utc)) is not None
    with pytest.raises(ConfigurationError, match="not a cron expression"):
        Schedule(task=nightly, cron="every day")
    with pytest.raises(ConfigurationError, match="unknown timezone"):
        Schedule(task=nightly, cron="0 3 * * *", timezone="Mars/Olympus")
