"""Issue 12, cases 7 and 3b: a job starts only if its worker still holds it when an executor
takes it (a job cancelled while it waited in prefetch never starts), and a claim whose answer
never reached a worker costs the job no attempt."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from sqljobs import JobQueue, JobState
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
