"""Helpers for testing an application that uses sqljobs, against a real database.

Example:
    >>> from sqljobs import testing
    >>> def test_signup_sends_welcome(client, jobs):               # doctest: +SKIP
    ...     with testing.capture(jobs) as captured:
    ...         client.post("/signup", json={"email": "a@example.com"})
    ...     job = testing.assert_enqueued(captured, send_welcome, email="a@example.com")
    ...     assert captured.drain().completed == [job.id]

With pytest, the fixtures of :mod:`sqljobs.pytest_plugin` wrap these (``jobs_inline``,
``jobs_captured``, ``jobs_drain``, ``jobs_reset``, ``jobs_no_worker``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from . import events
from .jobqueue import DrainResult, JobQueue
from .jobs import PENDING_STATES, Job, JobState
from .registry import Task
from .worker._lifespan import WorkerLifespan

__all__ = [
    "Captured",
    "DrainResult",
    "assert_enqueued",
    "capture",
    "enqueued",
    "inline",
    "no_worker",
    "refute_enqueued",
    "reset",
]

#: The most jobs :func:`enqueued` reads back.
_LIMIT = 10_000


@contextmanager
def inline(jobs: JobQueue, *, raise_errors: bool = True) -> Iterator[JobQueue]:
    """Within the block, every due job enqueued in this process runs in the thread that
    commits it (or enqueues it, without a session), before ``commit()`` returns - even while
    workers run: no worker can take it first.

    A task's exception is raised from that ``commit()`` (the job is stored failed or
    discarded first, as a worker would); ``raise_errors=False`` only logs it. Jobs enqueued
    with a delay stay scheduled, and a failed job's retries are left to workers or
    :meth:`~sqljobs.JobQueue.drain`.
    """
    previous = jobs.inline, jobs.raise_inline_errors
    jobs.inline, jobs.raise_inline_errors = True, raise_errors
    try:
        yield jobs
    finally:
        jobs.inline, jobs.raise_inline_errors = previous


@contextmanager
def no_worker(target: JobQueue | WorkerLifespan) -> Iterator[None]:
    """Within the block, apps that start do not run an in-process worker for this queue
    (``jobs.lifespan``, or ``sqljobs.fastapi.lifespan(jobs)``), or for this one lifespan.

    Checked at startup, so it works after the app was imported: enter it before
    ``with TestClient(app)``. A worker already running is left alone.
    """
    previous = target.lifespan_workers if isinstance(target, JobQueue) else target.enabled
    if isinstance(target, JobQueue):
        target.lifespan_workers = False
    else:
        target.enabled = False
    try:
        yield
    finally:
        if isinstance(target, JobQueue):
            target.lifespan_workers = previous
        else:
            target.enabled = previous


def reset(jobs: JobQueue) -> int:
    """Delete every job of the queue's database, whatever its state; return how many.

    For test isolation (between tests sharing one database). Queue limits set with
    ``configure_queue`` stay.
    """
    return jobs.store.delete_all_jobs()


class Captured:
    """The jobs committed in this process while a :func:`capture` block was open.

    Pass it instead of the queue to :func:`enqueued`, :func:`assert_enqueued` and
    :func:`refute_enqueued` to look only at those jobs.
    """

    def __init__(self, jobs: JobQueue) -> None:
        self.queue = jobs
        self._ids: list[int] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Captured {len(self.ids)} job(s) of {self.queue!r}>"

    @property
    def ids(self) -> list[int]:
        """Ids of the captured jobs, in the order they were committed."""
        with self._lock:
            return list(self._ids)

    def _add(self, _name: str, data: dict[str, Any]) -> None:
        with self._lock:
            self._ids.extend(i for i in data["job_ids"] if i not in self._ids)

    def drain(self, *, include_scheduled: bool = False) -> DrainResult:
        """Run the captured jobs that are due (like :meth:`JobQueue.drain`), then those they
        enqueue while the block is still open; jobs of other tests are left alone."""
        result = DrainResult()
        done: set[int] = set()
        while fresh := [job_id for job_id in self.ids if job_id not in done]:
            done.update(fresh)
            step = self.queue.drain(ids=fresh, include_scheduled=include_scheduled)
            for outcome in ("completed", "failed", "discarded", "cancelled", "snoozed"):
                getattr(result, outcome).extend(getattr(step, outcome))
        return result


@contextmanager
def capture(jobs: JobQueue) -> Iterator[Captured]:
    """Collect the jobs committed in this process (any thread) within the block.

    Example:
        >>> with testing.capture(jobs) as captured:                       # doctest: +SKIP
        ...     client.post("/signup", json={"email": "a@example.com"})
        >>> testing.assert_enqueued(captured, send_welcome)
        >>> captured.drain()
    """
    captured = Captured(jobs)
    unsubscribe = jobs.events.subscribe(events.JOB_ENQUEUED, captured._add)
    try:
        yield captured
    finally:
        unsubscribe()


def enqueued(
    where: JobQueue | Captured,
    task: Task[Any] | str | None = None,
    *,
    states: Iterable[JobState | str] | None = None,
    **args: Any,
) -> list[Job]:
    """Jobs oldest first, optionally only those of ``task`` whose arguments include ``args``.

    ``where`` is the queue, or a :class:`Captured` for only the jobs it captured. ``states``
    defaults to the waiting ones (scheduled, available, retryable); ``states=JobState`` shows
    every state.
    """
    queue, ids = (where.queue, where.ids) if isinstance(where, Captured) else (where, None)
    if ids is not None and not ids:
        return []
    chosen = list(PENDING_STATES) if states is None else [JobState(s) for s in states]
    name = task.name if isinstance(task, Task) else task
    found = queue.store.list_jobs(states=chosen, task=name, ids=ids, limit=_LIMIT)
    matching = [job for job in found if _includes(job.args, args)]
    return sorted(matching, key=lambda job: job.id)


def assert_enqueued(
    where: JobQueue | Captured,
    task: Task[Any] | str,
    *,
    states: Iterable[JobState | str] | None = None,
    **args: Any,
) -> Job:
    """Assert exactly one job of ``task`` with these arguments (in ``states``, by default
    waiting) exists; return it. See :func:`enqueued`."""
    chosen = None if states is None else list(states)
    found = enqueued(where, task, states=chosen, **args)
    name = task.name if isinstance(task, Task) else task
    if len(found) != 1:
        kind = "waiting" if chosen is None else "/".join(JobState(s).value for s in chosen)
        others = [(job.id, job.args) for job in enqueued(where, task, states=chosen)]
        raise AssertionError(
            f"expected one {kind} {name} job with {args}, found {len(found)}; "
            f"{kind} {name} jobs: {others}"
        )
    return found[0]


def refute_enqueued(
    where: JobQueue | Captured,
    task: Task[Any] | str,
    *,
    states: Iterable[JobState | str] | None = None,
    **args: Any,
) -> None:
    """Assert no job of ``task`` with these arguments (in ``states``, by default waiting)
    exists. See :func:`enqueued`."""
    found = enqueued(where, task, states=states, **args)
    if found:
        raise AssertionError(f"expected no such job, found {[(j.id, j.args) for j in found]}")


def _includes(actual: Any, expected: dict[str, Any]) -> bool:
    return isinstance(actual, dict) and all(actual.get(k) == v for k, v in expected.items())
