"""The claimer: batches of claims into free slots, prefetch (claimed jobs waiting for a free
executor), per-queue limits and the cooldown after a claim that emptied the queue."""

from __future__ import annotations

import threading
import time
from itertools import pairwise
from typing import Any

import pytest

from sqljobs import ConfigurationError, JobQueue, JobState, events
from sqljobs.worker import CLAIM_COOLDOWN_SECONDS, SHORT_JOB_SECONDS
from sqljobs.worker._claimer import PrefetchPolicy
from sqljobs.worker._slots import Slots
from tests.helpers import EventLog, eventually


def states(jobs: JobQueue, ids: list[int]) -> dict[JobState, int]:
    found: dict[JobState, int] = {}
    for job_id in ids:
        state = jobs.get(job_id).state
        found[state] = found.get(state, 0) + 1
    return found


def blocking_task(jobs: JobQueue) -> tuple[Any, threading.Event, list[int]]:
    release = threading.Event()
    started: list[int] = []
    lock = threading.Lock()

    @jobs.task
    def block(n: int) -> int:
        with lock:
            started.append(n)
        release.wait(30)
        return n

    return block, release, started


def test_a_worker_claims_concurrency_plus_prefetch_jobs_and_runs_only_concurrency(
    jobs: JobQueue,
) -> None:
    block, release, started = blocking_task(jobs)
    ids = jobs.enqueue_many(None, [block.prepare(n=n) for n in range(10)])
    with jobs.worker(concurrency=2, prefetch=3, poll_interval=0.02) as worker:
        eventually(lambda: states(jobs, ids).get(JobState.RUNNING) == 5)
        eventually(lambda: len(started) == 2)
        assert len(started) == 2  # three of the five claimed jobs wait for an executor
        assert states(jobs, ids) == {JobState.RUNNING: 5, JobState.AVAILABLE: 5}
        assert len(worker.running_jobs) == 5
        release.set()
        eventually(lambda: states(jobs, ids) == {JobState.COMPLETED: 10})
    assert sorted(started) == list(range(10))
    assert sorted(jobs.get(i).result for i in ids) == list(range(10))


def test_automatic_prefetch_claims_ahead_only_while_jobs_are_short(jobs: JobQueue) -> None:
    block, release, started = blocking_task(jobs)

    @jobs.task
    def quick(n: int) -> int:
        return n

    slow_first = jobs.enqueue_many(None, [block.prepare(n=n) for n in range(8)])
    with jobs.worker(concurrency=2, poll_interval=0.02):
        # Nothing known about run times yet: no job is claimed beyond the two that run.
        eventually(lambda: len(started) == 2)
        assert states(jobs, slow_first) == {JobState.RUNNING: 2, JobState.AVAILABLE: 6}
        release.set()
        eventually(lambda: states(jobs, slow_first) == {JobState.COMPLETED: 8})
        # Many short jobs: the worker learns that jobs are quick...
        release.clear()
        quick_ids = jobs.enqueue_many(None, [quick.prepare(n=n) for n in range(60)])
        eventually(lambda: states(jobs, quick_ids) == {JobState.COMPLETED: 60})
        # ...and then claims 2 * concurrency ahead of its two executors.
        started.clear()
        blocked = jobs.enqueue_many(None, [block.prepare(n=n) for n in range(10)])
        eventually(lambda: len(started) == 2)
        eventually(lambda: states(jobs, blocked) == {JobState.RUNNING: 6, JobState.AVAILABLE: 4})
        release.set()
        eventually(lambda: states(jobs, blocked) == {JobState.COMPLETED: 10})


def test_prefetch_zero_claims_only_for_idle_executors(jobs: JobQueue) -> None:
    block, release, started = blocking_task(jobs)
    ids = jobs.enqueue_many(None, [block.prepare(n=n) for n in range(6)])
    with jobs.worker(concurrency=2, prefetch=0, poll_interval=0.02):
        eventually(lambda: len(started) == 2)
        assert states(jobs, ids) == {JobState.RUNNING: 2, JobState.AVAILABLE: 4}
        release.set()
        eventually(lambda: states(jobs, ids) == {JobState.COMPLETED: 6})


def test_stop_gives_waiting_jobs_back_at_once_and_finishes_running_ones(
    jobs: JobQueue,
) -> None:
    block, release, started = blocking_task(jobs)
    ids = jobs.enqueue_many(None, [block.prepare(n=n) for n in range(4)])
    worker = jobs.worker(concurrency=1, prefetch=3, poll_interval=0.02)
    worker.start()
    eventually(lambda: states(jobs, ids).get(JobState.RUNNING) == 4 and len(started) == 1)
    running = next(i for i in ids if jobs.get(i).args == {"n": started[0]})
    stopper = threading.Thread(target=worker.stop, kwargs={"grace": 30})
    stopper.start()
    # While the running job is still inside its grace period, the three waiting ones are
    # already back in the queue, their attempt not counted, for any worker to take.
    waiting = [i for i in ids if i != running]
    eventually(lambda: states(jobs, waiting) == {JobState.AVAILABLE: 3})
    assert stopper.is_alive()
    assert all(jobs.get(i).attempt == 0 for i in waiting)
    release.set()
    stopper.join(30)
    assert not stopper.is_alive()
    assert started == [started[0]]  # the waiting jobs never started here
    assert jobs.get(running).state is JobState.COMPLETED
    assert jobs.drain().completed == sorted(waiting)


def test_a_queue_with_a_local_limit_is_not_prefetched(jobs: JobQueue) -> None:
    block, release, started = blocking_task(jobs)
    ids = jobs.enqueue_many(None, [block.prepare(n=n) for n in range(6)])
    with jobs.worker(queues={"default": 2}, concurrency=4, prefetch=4, poll_interval=0.02):
        eventually(lambda: len(started) == 2)
        # Its jobs count against the limit from their claim: none wait in a prefetch buffer.
        assert states(jobs, ids) == {JobState.RUNNING: 2, JobState.AVAILABLE: 4}
        release.set()
        eventually(lambda: states(jobs, ids) == {JobState.COMPLETED: 6})


def test_a_negative_prefetch_is_refused(offline_jobs: JobQueue) -> None:
    with pytest.raises(ConfigurationError, match="prefetch must be 0 or more"):
        offline_jobs.worker(prefetch=-1)


def test_a_full_worker_waits_for_room_without_spinning(jobs: JobQueue) -> None:
    """With every slot taken, the claimer goes round once per wake-up, not in a loop: with a
    10-minute poll, its "no room" rounds are bounded by the wake-ups (two per enqueue at
    most: this process and PostgreSQL's NOTIFY; one per job that finishes; one at stop)."""
    block, release, started = blocking_task(jobs)
    idle = EventLog(jobs, events.WORKER_IDLE)
    with jobs.worker(concurrency=2, poll_interval=600):  # automatic prefetch: 0 for slow jobs
        ids = [block.enqueue(n=n) for n in range(2)]
        eventually(lambda: len(started) == 2)
        ids += [block.enqueue(n=n) for n in range(2, 12)]
        # Each of these enqueues woke the claimer, which has no room (slow jobs).
        idle.wait_for(events.WORKER_IDLE, reason="no room")
        assert states(jobs, ids) == {JobState.RUNNING: 2, JobState.AVAILABLE: 10}
        release.set()
        eventually(lambda: states(jobs, ids) == {JobState.COMPLETED: 12})
    wake_ups = 2 * len(ids) + len(ids) + 1
    assert idle.count(events.WORKER_IDLE, reason="no room") <= wake_ups


def test_after_a_claim_empties_the_queue_the_next_claim_waits_out_the_cooldown(
    jobs: JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain: each job's start enqueues the next, so every claim finds one job and drains
    the queue, and a wake-up for the next job is already waiting when it returns."""
    total = 30

    @jobs.task
    def quick(n: int) -> int:
        return n

    claims: list[tuple[float, float, int, int]] = []  # start, end, asked, got
    real_claim = jobs.store.claim

    def recording_claim(**kwargs: Any) -> Any:
        start = time.monotonic()
        claimed = real_claim(**kwargs)
        claims.append((start, time.monotonic(), kwargs["limit"], len(claimed)))
        return claimed

    def enqueue_the_next(_name: str, data: dict[str, Any]) -> None:
        n = data["job"].args["n"]
        if n + 1 < total:
            quick.enqueue(n=n + 1)

    cooldown = 4 * CLAIM_COOLDOWN_SECONDS  # a longer one than the default, to tell it apart
    monkeypatch.setattr("sqljobs.worker._claimer.CLAIM_COOLDOWN_SECONDS", cooldown)
    monkeypatch.setattr(jobs.store, "claim", recording_claim)
    jobs.events.subscribe(events.JOB_STARTED, enqueue_the_next)
    with jobs.worker(concurrency=2, poll_interval=600):
        quick.enqueue(n=0)
        eventually(lambda: jobs.counts() == {("default", JobState.COMPLETED): total})
    found = [(end, got) for _start, end, _asked, got in claims if got]
    assert [got for _end, got in found] == [1] * total  # one job per claim: each drained
    after_drained = [nxt[0] - prev[1] for prev, nxt in pairwise(claims) if prev[3] < prev[2]]
    # A claim that asked for one job and got it may not have drained the queue, so it is
    # not counted; most claims ask for more than one.
    assert len(after_drained) >= total // 2, claims
    # Each claim that emptied the queue is followed by a pause, not by a claim per job.
    assert min(after_drained) >= cooldown - 1e-4, sorted(after_drained)[:5]


# -- the prefetch policy and the slots, without a database ------------------------------------


def test_automatic_prefetch_follows_the_moving_average_of_run_times() -> None:
    policy = PrefetchPolicy(concurrency=3, fixed=None)
    assert policy.most == 6
    for _ in range(20):
        policy.record(SHORT_JOB_SECONDS / 10)
    assert policy.now() == 6
    for _ in range(20):
        policy.record(SHORT_JOB_SECONDS * 10)
    assert policy.now() == 0
    for _ in range(30):
        policy.record(0.0)
    assert policy.now() == 6


def test_a_fixed_prefetch_ignores_run_times() -> None:
    policy = PrefetchPolicy(concurrency=3, fixed=2)
    for _ in range(20):
        policy.record(10.0)
    assert (policy.most, policy.now()) == (2, 2)


def test_gather_takes_every_free_slot_up_to_the_capacity() -> None:
    slots = Slots(5)
    assert slots.acquire(timeout=0)
    assert slots.gather(4, more_coming=lambda: False) == 4
    assert slots.acquire(timeout=0)  # the fifth is still free
    assert not slots.acquire(timeout=0)


def test_gather_waits_for_half_the_capacity_only_while_claimed_jobs_are_queued() -> None:
    slots = Slots(2)
    assert slots.acquire(timeout=0) and slots.acquire(timeout=0)  # one held, one busy
    asked: list[bool] = []

    def an_executor_frees_a_slot_while_jobs_are_queued() -> bool:
        if not asked:
            slots.release()
        asked.append(True)
        return True

    # Capacity 4, batch 2: with one slot in hand and jobs queued, it waits for a second.
    assert slots.gather(4, more_coming=an_executor_frees_a_slot_while_jobs_are_queued) == 2
    slots.release(2)
    assert slots.acquire(timeout=0) and slots.acquire(timeout=0)
    # Nothing queued: it claims with the slot it has instead of waiting for more.
    assert slots.gather(4, more_coming=lambda: False) == 1
    assert not slots.acquire(timeout=0)
