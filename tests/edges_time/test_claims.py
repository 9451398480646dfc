"""Issue 12, cases 7 and 3b: a job starts only if its worker still holds it when an executor
takes it (a job cancelled while it waited in prefetch never starts), and a claim whose answer
never reached a worker costs the job no attempt - also a claim that recorded the start of
jobs for idle executors (issue 16)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from sqlalchemy import event

from sqljobs import JobQueue, JobState
from sqljobs.store import _statements
from tests.helpers import eventually


def test_a_cancelled_job_waiting_in_prefetch_never_starts(jobs: JobQueue) -> None:
    release = threading.Event()
    started: list[int] = []

    @jobs.task
    def block(n: int) -> int:
        started.append(n)
        release.wait(30)
        return n

    ids = [block.enqueue(n=n) for n in range(4)]
    with jobs.worker(concurrency=1, prefetch=3, poll_interval=0.02):
        eventually(lambda: len(started) == 1 and all(jobs.get(i).attempt == 1 for i in ids))
        running = ids[started[0]]
        waiting = [i for i in ids if i != running]
        for job_id in waiting:  # all claimed by the worker, waiting for its one executor
            assert jobs.get(job_id).state is JobState.RUNNING
            assert jobs.get(job_id).started_at is None
            jobs.cancel(job_id)
        release.set()
        eventually(lambda: jobs.get(running).state is JobState.COMPLETED)
        extra = block.enqueue(n=99)  # the executor went past the cancelled ones
        eventually(lambda: jobs.get(extra).state is JobState.COMPLETED)
    assert started == [started[0], 99]
    assert all(jobs.get(i).state is JobState.CANCELLED for i in waiting)


def test_a_lost_claim_answer_costs_no_attempt(jobs: JobQueue) -> None:
    ran: list[int] = []

    @jobs.task(max_attempts=1)
    def once(n: int) -> int:
        ran.append(n)
        return n

    job_id = once.enqueue(n=7)
    # The claim commits, but its answer never reaches the claiming worker (lost on the wire,
    # or the worker died between the commit and the answer).
    lost = jobs.store.claim(
        worker_id="worker-whose-answer-was-lost",
        queues=["default"],
        limit=1,
        lease=timedelta(seconds=0.3),
    )
    assert [job.id for job in lost] == [job_id]
    with jobs.worker(concurrency=1, poll_interval=0.02, lease=1, rescue_interval=0.1):
        eventually(lambda: jobs.get(job_id).state.is_finished)
    job = jobs.get(job_id)
    assert (job.state, job.attempt, job.result) == (JobState.COMPLETED, 1, 7)
    assert ran == [7]
    assert [e.type for e in job.errors] == ["NeverStarted"]


def test_a_lost_claim_answer_rescue_still_counts_attempts_of_started_jobs(
    jobs: JobQueue,
) -> None:
    """The rule's other side: a job that did start and whose worker vanished is rescued with
    its attempt counted (a task that kills its process cannot loop for ever)."""
    ran: list[Any] = []

    @jobs.task(max_attempts=1)
    def once() -> None:
        ran.append(1)

    job_id = once.enqueue()
    [claimed] = jobs.store.claim(
        worker_id="vanished", queues=["default"], limit=1, lease=timedelta(seconds=0.3)
    )
    assert jobs.store.mark_started(claimed)  # it started, then its worker died
    with jobs.worker(concurrency=1, poll_interval=0.02, lease=1, rescue_interval=0.1):
        eventually(lambda: jobs.get(job_id).state.is_finished)
    job = jobs.get(job_id)
    assert job.state is JobState.DISCARDED and [e.type for e in job.errors] == ["LeaseExpired"]
    assert ran == []


def test_a_job_claimed_for_an_idle_executor_is_started_by_its_claim(jobs: JobQueue) -> None:
    """No start of its own: one transaction per job fewer while jobs come one at a time."""
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    @jobs.task
    def once(n: int) -> int:
        return n

    engine = jobs.store.engine
    with jobs.worker(concurrency=2, poll_interval=0.02):
        event.listen(engine, "before_cursor_execute", record)
        try:
            job_ids = [once.enqueue(n=n) for n in range(3)]
            eventually(lambda: all(jobs.get(i).state is JobState.COMPLETED for i in job_ids))
        finally:
            event.remove(engine, "before_cursor_execute", record)
    start = str(_statements.MARK_STARTED.compile(dialect=engine.dialect))
    assert start not in sent
    assert all(jobs.get(i).started_at is not None and jobs.get(i).attempt == 1 for i in job_ids)


def test_jobs_a_lost_starting_claim_took_are_given_back_by_their_worker(jobs: JobQueue) -> None:
    """The claim recorded their start, but they never ran: given back, attempt not counted
    (max_attempts=1 would otherwise discard them unrun); the worker's held jobs stay."""

    @jobs.task(max_attempts=1)
    def once(n: int) -> int:
        return n

    held_id, lost_id = once.enqueue(n=1), once.enqueue(n=2)
    claimed = jobs.store.claim(
        worker_id="w", queues=["default"], limit=2, lease=timedelta(minutes=5), start=True
    )
    assert sorted(job.id for job in claimed) == [held_id, lost_id]
    assert all(jobs.get(i).started_at is not None for i in (held_id, lost_id))
    given_back = jobs.store.give_back_unheld(worker_id="w", held_ids=[held_id])
    assert given_back == [lost_id]
    lost = jobs.get(lost_id)
    assert (lost.state, lost.attempt, lost.started_at) == (JobState.AVAILABLE, 0, None)
    assert [e.type for e in lost.errors] == ["NeverStarted"]
    assert jobs.get(held_id).state is JobState.RUNNING
    assert jobs.drain(ids=[lost_id]).completed == [lost_id]
    assert (jobs.get(lost_id).attempt, jobs.get(lost_id).result) == (1, 2)
