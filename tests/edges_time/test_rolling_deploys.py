"""Issue 12, case 4: during a rolling deploy, old and new workers share the queue. A worker
claims only the tasks it has registered, and a job whose arguments do not fit its version of
the task goes back to the queue, the attempt not counted, never to ``discarded``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker

from sqljobs import JobQueue, JobState
from sqljobs.worker import _executor as executor_module
from tests.helpers import eventually


@pytest.fixture
def other_version(session_factory: sessionmaker[Any], jobs: JobQueue) -> Iterator[JobQueue]:
    """A second process's JobQueue on the same database: the other version of the code."""
    queue = JobQueue(session_factory)
    yield queue
    queue.close()


def test_rolling_deploys_a_worker_never_claims_a_task_it_does_not_know(
    jobs: JobQueue, other_version: JobQueue
) -> None:
    ran: list[str] = []

    @jobs.task(name="known")
    def known_old() -> None:
        ran.append("old:known")

    @other_version.task(name="known")
    def known_new() -> None:
        ran.append("new:known")

    @other_version.task(name="brand_new", max_attempts=1)
    def brand_new() -> None:
        ran.append("new:brand_new")

    new_job = brand_new.enqueue()
    known_jobs = [known_new.enqueue() for _ in range(3)]
    with jobs.worker(concurrency=2, poll_interval=0.02):  # the old code
        eventually(lambda: all(jobs.get(i).state is JobState.COMPLETED for i in known_jobs))
    left = jobs.get(new_job)
    assert (left.state, left.attempt, left.errors) == (JobState.AVAILABLE, 0, ())
    with other_version.worker(concurrency=2, poll_interval=0.02):  # the new code
        eventually(lambda: jobs.get(new_job).state is JobState.COMPLETED)
    assert ran.count("new:brand_new") == 1 and ran.count("old:known") == 3
    assert jobs.get(new_job).attempt == 1


def version_with(queue: JobQueue, ran: list[str], label: str, *, extra: bool) -> Any:
    """The task ``resize`` in one version: with ``extra`` it takes the new ``size``."""
    if extra:

        @queue.task(name="resize", max_attempts=1)
        def resize_new(image: int, size: int) -> int:
            ran.append(label)
            return image * size

        return resize_new

    @queue.task(name="resize", max_attempts=1)
    def resize_old(image: int) -> int:
        ran.append(label)
        return image

    return resize_old


@pytest.mark.parametrize(
    "enqueued_by_new", [True, False], ids=["new-parameter-to-old-worker", "old-job-to-new-worker"]
)
def test_rolling_deploys_arguments_that_do_not_fit_go_back_without_costing_an_attempt(
    jobs: JobQueue, other_version: JobQueue, enqueued_by_new: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new parameter reaches an old worker (unexpected argument), or a job enqueued by the
    old code reaches a new worker whose parameter is required (missing argument): the job
    goes back with an ``ArgumentsDoNotFit`` note for the back-off, and the version it fits
    runs it once. (The 5 s back-off is shortened to 2 s so the test waits less.)"""
    # Long enough that the job is still scheduled when the test reads it, even on a loaded
    # machine (after the delay the mismatched worker would claim it again).
    monkeypatch.setattr(executor_module, "MISFIT_DELAY", 2.0)
    ran: list[str] = []
    mismatched = version_with(jobs, ran, "mismatched", extra=not enqueued_by_new)
    fitting = version_with(other_version, ran, "fitting", extra=enqueued_by_new)
    job_id = fitting.enqueue(image=3, size=2) if enqueued_by_new else fitting.enqueue(image=3)
    with jobs.worker(concurrency=1, poll_interval=0.02):
        back = eventually(lambda: job if (job := jobs.get(job_id)).errors else None)
    assert back.state is JobState.SCHEDULED and back.attempt == 0
    assert [e.type for e in back.errors] == ["ArgumentsDoNotFit"]
    assert back.run_at >= back.errors[0].at + timedelta(seconds=2.0)
    assert mismatched.name in back.errors[0].message or "argument" in back.errors[0].message
    with other_version.worker(concurrency=1, poll_interval=0.02):
        eventually(lambda: jobs.get(job_id).state is JobState.COMPLETED)
    assert ran == ["fitting"]
    done = jobs.get(job_id)
    assert done.attempt == 1 and done.result == (6 if enqueued_by_new else 3)


def test_rolling_deploys_drain_stops_at_a_job_that_does_not_fit(
    jobs: JobQueue, other_version: JobQueue
) -> None:
    ran: list[str] = []
    version_with(jobs, ran, "old", extra=False)
    new = version_with(other_version, ran, "new", extra=True)
    job_id = new.enqueue(image=1, size=1)
    result = jobs.drain(include_scheduled=True)
    assert result.snoozed == [job_id] and ran == []
    job = jobs.get(job_id)
    assert job.attempt == 0 and job.state is not JobState.DISCARDED
