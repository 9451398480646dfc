"""The completer: session-less completions stored in batches, on each database."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sqljobs import JobQueue, JobState
from sqljobs.exceptions import StoreError
from sqljobs.jobs import Job
from sqljobs.worker._completer import MAX_COMPLETION_BATCH, Completer
from sqljobs.worker._held import HeldJobs
from sqljobs.worker._outcomes import Completed
from sqljobs.worker._stats import WorkerStats

LEASE = timedelta(minutes=1)


def claimed_jobs(jobs: JobQueue, count: int, worker_id: str = "w1") -> list[Job]:
    @jobs.task(name="noop")
    def noop(n: int) -> int:
        return n

    jobs.enqueue_many(None, [noop.prepare(n=n) for n in range(count)])
    return jobs.store.claim(worker_id=worker_id, queues=["default"], limit=count, lease=LEASE)


def completer_for(jobs: JobQueue) -> tuple[Completer, HeldJobs, WorkerStats, list[StoreError]]:
    held = HeldJobs(on_freed=lambda: None)
    stats = WorkerStats()
    errors: list[StoreError] = []
    completer = Completer(
        runner=jobs.runner,
        held=held,
        stats=stats,
        on_store_error=lambda _jobs, exc: errors.append(exc),
    )
    return completer, held, stats, errors


def test_finish_stores_every_handed_over_completion_and_forgets_the_jobs(
    jobs: JobQueue,
) -> None:
    claimed = claimed_jobs(jobs, 12)
    completer, held, stats, errors = completer_for(jobs)
    held.add(claimed, lambda _: None)
    for job in claimed:
        completer.submit(job, Completed(result=job.args["n"] * 2, persisted=False), 0.0)
    completer.start()
    completer.finish(timeout=30)
    assert errors == []
    assert stats.completed == 12
    assert len(held) == 0
    done = [jobs.get(job.id) for job in claimed]
    assert {job.state for job in done} == {JobState.COMPLETED}
    assert [job.result for job in done] == [job.args["n"] * 2 for job in claimed]


def test_a_backlog_is_stored_in_batches_of_at_most_the_batch_size(
    jobs: JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sqljobs.worker._completer.MAX_COMPLETION_BATCH", 5)
    claimed = claimed_jobs(jobs, 12)
    completer, _held, stats, _ = completer_for(jobs)
    batches: list[int] = []
    complete_many = jobs.store.complete_many

    def recording(done: list[tuple[Job, object]]) -> set[int]:
        batches.append(len(done))
        return complete_many(done)

    monkeypatch.setattr(jobs.store, "complete_many", recording)
    for job in claimed:
        completer.submit(job, Completed(result=None, persisted=False), 0.0)
    completer.start()
    completer.finish(timeout=30)
    assert batches == [5, 5, 2]
    assert stats.completed == 12
    assert MAX_COMPLETION_BATCH == 500  # the real size, restored after the test


def test_a_job_whose_lease_was_taken_is_counted_lost_not_completed(jobs: JobQueue) -> None:
    claimed = claimed_jobs(jobs, 2)
    jobs.store.release([claimed[0]])  # another worker could now hold it
    completer, _held, stats, errors = completer_for(jobs)
    for job in claimed:
        completer.submit(job, Completed(result=None, persisted=False), 0.0)
    completer.start()
    completer.finish(timeout=30)
    assert (stats.completed, stats.lease_lost, errors) == (1, 1, [])
    assert jobs.get(claimed[0].id).state is JobState.AVAILABLE
    assert jobs.get(claimed[1].id).state is JobState.COMPLETED
