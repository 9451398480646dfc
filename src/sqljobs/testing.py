"""Helpers for testing an application that uses sqljobs, against a real database.

Example:
    >>> from sqljobs import testing
    >>> def test_signup_sends_welcome(client, jobs):               # doctest: +SKIP
    ...     client.post("/signup", json={"email": "a@example.com"})
    ...     job = testing.assert_enqueued(jobs, send_welcome, email="a@example.com")
    ...     assert jobs.drain().completed == [job.id]
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .jobqueue import DrainResult, JobQueue
from .jobs import PENDING_STATES, Job
from .registry import Task

__all__ = ["DrainResult", "assert_enqueued", "enqueued", "inline", "refute_enqueued"]


@contextmanager
def inline(jobs: JobQueue) -> Iterator[JobQueue]:
    """Within the block, every job runs right after it is enqueued (after the caller's
    commit, when it was enqueued in a session), in the calling thread."""
    previous = jobs.inline
    jobs.inline = True
    try:
        yield jobs
    finally:
        jobs.inline = previous


def enqueued(jobs: JobQueue, task: Task[Any] | str | None = None, **args: Any) -> list[Job]:
    """Jobs waiting to run (scheduled, available or retryable), oldest first, optionally
    only those of ``task`` whose arguments include ``args``."""
    name = task.name if isinstance(task, Task) else task
    waiting = jobs.list_jobs(state=list(PENDING_STATES), task=name, limit=10_000)
    matching = [job for job in waiting if _includes(job.args, args)]
    return sorted(matching, key=lambda job: job.id)


def assert_enqueued(jobs: JobQueue, task: Task[Any] | str, **args: Any) -> Job:
    """Assert exactly one waiting job of ``task`` with these arguments exists; return it."""
    found = enqueued(jobs, task, **args)
    name = task.name if isinstance(task, Task) else task
    if len(found) != 1:
        others = [(job.id, job.args) for job in enqueued(jobs, task)]
        raise AssertionError(
            f"expected one waiting {name} job with {args}, found {len(found)}; "
            f"waiting {name} jobs: {others}"
        )
    return found[0]


def refute_enqueued(jobs: JobQueue, task: Task[Any] | str, **args: Any) -> None:
    """Assert no waiting job of ``task`` with these arguments exists."""
    found = enqueued(jobs, task, **args)
    if found:
        raise AssertionError(f"expected no waiting job, found {[(j.id, j.args) for j in found]}")


def _includes(actual: Any, expected: dict[str, Any]) -> bool:
    return isinstance(actual, dict) and all(actual.get(k) == v for k, v in expected.items())
