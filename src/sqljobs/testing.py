"""Helpers for testing an application that uses sqljobs, against a real database.

Example:
    >>> from sqljobs import testing
    >>> def test_signup_sends_welcome(client, jobs):               # doctest: +SKIP
    ...     with testing.capture(jobs) as captured:
    ...         client.post("/signup", json={"email": "a@example.com"})
    ...     job = testing.assert_enqueued(captured, send_welcome, email="a@example.com")
    ...     assert captured.drain().completed == [job.id]

With pytest, the fixtures of :mod:`sqljobs.pytest_plugin` wrap these (``jobs_inline``,
``jobs_captured``, ``jobs_drain``, ``jobs_adrain``, ``jobs_reset``, ``jobs_no_worker``).

A test that runs in one transaction rolled back afterwards (the rollback-per-test pattern)
passes the session or connection it uses as ``using=``: :func:`enqueued`,
:func:`assert_enqueued`, :func:`refute_enqueued`, :func:`inline` and ``drain`` then read and
run the jobs in that transaction (``aenqueued``, ``aassert_enqueued``, ``arefute_enqueued``
and ``adrain`` for an ``AsyncSession`` or ``AsyncConnection``). See docs/testing.md.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from . import events
from ._binding import Using, binding_for, run_in_greenlet
from .exceptions import ConfigurationError
from .jobqueue import DrainResult, JobQueue
from .jobs import PENDING_STATES, Job, JobState
from .registry import Task
from .store import Binding, bound_to
from .worker._lifespan import WorkerLifespan

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

    AsyncUsing = AsyncSession | AsyncConnection

__all__ = [
    "Captured",
    "DrainResult",
    "aassert_enqueued",
    "aenqueued",
    "arefute_enqueued",
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
def inline(
    jobs: JobQueue,
    using: Using | AsyncUsing | None = None,
    *,
    raise_errors: bool = True,
) -> Iterator[JobQueue]:
    """Within the block, every due job enqueued in this process runs in the thread that
    commits it (or enqueues it, without a session), before ``commit()`` returns - even while
    workers run: no worker can take it first.

    A task's exception is raised from that ``commit()`` (the job is stored failed or
    discarded first, as a worker would); ``raise_errors=False`` only logs it. Jobs enqueued
    with a delay stay scheduled, and a failed job's retries are left to workers or
    :meth:`~sqljobs.JobQueue.drain`.

    Jobs enqueued in a session that joins an outer transaction (bound to a ``Connection`` or
    ``AsyncConnection``, as in the rollback-per-test pattern) run in that transaction, each
    in a savepoint, with a job session joining it too; an ``AsyncSession``'s async tasks run
    on its loop. ``using``, the test's session or connection, does the same for what this
    context (thread or asyncio task) enqueues without a session.

    Raises:
        ConfigurationError: when a task of ``jobs`` belongs to another queue (added with
            ``registry.add``): its enqueues go to that queue, so nothing would run inline.
    """
    foreign = sorted(name for name, task in jobs.registry.items() if task.owner is not jobs)
    if foreign:
        owner = jobs.registry[foreign[0]].owner
        raise ConfigurationError(
            f"task(s) {', '.join(foreign)} were registered with another queue ({owner!r}) and "
            f"added to this one ({jobs!r}): their enqueues go to their own queue, so inline "
            "mode here would run nothing. Point the app's queue at the test database instead "
            "of making a second one: jobs.rebind(TestSessionLocal), then testing.inline(jobs)"
        )
    previous = jobs.inline, jobs.raise_inline_errors
    jobs.inline, jobs.raise_inline_errors = True, raise_errors
    try:
        with bound_to(_sync_binding(using)):
            yield jobs
    finally:
        jobs.inline, jobs.raise_inline_errors = previous


def _sync_binding(using: Any) -> Binding | None:
    """The binding of ``using`` without awaiting: an AsyncSession bound to an AsyncConnection
    (or that AsyncConnection) gives its sync connection, used from its greenlets only."""
    if using is None:
        return None
    bind = getattr(using, "bind", None)
    async_connection: Any = bind if hasattr(bind, "sync_connection") else using
    if not hasattr(async_connection, "sync_connection"):
        return binding_for(using)  # a sync Session or Connection
    connection = async_connection.sync_connection
    if not isinstance(connection, Connection):
        raise ConfigurationError(
            "using= got an AsyncSession that is not bound to a started AsyncConnection: "
            "for the rollback-per-test pattern, bind it to the test's connection "
            "(AsyncSession(bind=connection, join_transaction_mode='create_savepoint'))"
        )
    return Binding(connection, async_connection)


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

    def drain(self, *, include_scheduled: bool = False, using: Using | None = None) -> DrainResult:
        """Run the captured jobs that are due (like :meth:`JobQueue.drain`), then those they
        enqueue while the block is still open; jobs of other tests are left alone.
        ``using``: the test's Session or Connection, whose transaction the jobs run in."""
        with bound_to(binding_for(using) if using is not None else None):
            result = DrainResult()
            done: set[int] = set()
            while fresh := [job_id for job_id in self.ids if job_id not in done]:
                done.update(fresh)
                step = self.queue.drain(ids=fresh, include_scheduled=include_scheduled)
                for outcome in ("completed", "failed", "discarded", "cancelled", "snoozed"):
                    getattr(result, outcome).extend(getattr(step, outcome))
            return result

    async def adrain(
        self, *, include_scheduled: bool = False, using: AsyncUsing | None = None
    ) -> DrainResult:
        """:meth:`drain` from ``async def`` code: async tasks run on the caller's loop
        (see :meth:`JobQueue.adrain`); ``using``: the test's AsyncSession or AsyncConnection."""
        return await run_in_greenlet(using, lambda: self.drain(include_scheduled=include_scheduled))


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
    task: Task[..., Any] | str | None = None,
    *,
    states: Iterable[JobState | str] | None = None,
    using: Using | None = None,
    **args: Any,
) -> list[Job]:
    """Jobs oldest first, optionally only those of ``task`` whose arguments include ``args``.

    ``where`` is the queue, or a :class:`Captured` for only the jobs it captured. ``states``
    defaults to the waiting ones (scheduled, available, retryable); ``states=JobState`` shows
    every state. ``using``: the test's Session or Connection, to read in its transaction
    (``await aenqueued(...)`` for async ones).
    """
    with bound_to(binding_for(using) if using is not None else None):
        return _enqueued(where, task, states, args)


def _enqueued(
    where: JobQueue | Captured,
    task: Task[..., Any] | str | None,
    states: Iterable[JobState | str] | None,
    args: dict[str, Any],
) -> list[Job]:
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
    task: Task[..., Any] | str,
    *,
    states: Iterable[JobState | str] | None = None,
    using: Using | None = None,
    **args: Any,
) -> Job:
    """Assert exactly one job of ``task`` with these arguments (in ``states``, by default
    waiting) exists; return it. See :func:`enqueued`."""
    with bound_to(binding_for(using) if using is not None else None):
        return _assert_enqueued(where, task, states, args)


def _assert_enqueued(
    where: JobQueue | Captured,
    task: Task[..., Any] | str,
    states: Iterable[JobState | str] | None,
    args: dict[str, Any],
) -> Job:
    chosen = None if states is None else list(states)
    found = _enqueued(where, task, chosen, args)
    name = task.name if isinstance(task, Task) else task
    if len(found) != 1:
        kind = "waiting" if chosen is None else "/".join(JobState(s).value for s in chosen)
        others = [(job.id, job.args) for job in _enqueued(where, task, chosen, {})]
        raise AssertionError(
            f"expected one {kind} {name} job with {args}, found {len(found)}; "
            f"{kind} {name} jobs: {others}"
        )
    return found[0]


def refute_enqueued(
    where: JobQueue | Captured,
    task: Task[..., Any] | str,
    *,
    states: Iterable[JobState | str] | None = None,
    using: Using | None = None,
    **args: Any,
) -> None:
    """Assert no job of ``task`` with these arguments (in ``states``, by default waiting)
    exists. See :func:`enqueued`."""
    with bound_to(binding_for(using) if using is not None else None):
        _refute_enqueued(where, task, states, args)


def _refute_enqueued(
    where: JobQueue | Captured,
    task: Task[..., Any] | str,
    states: Iterable[JobState | str] | None,
    args: dict[str, Any],
) -> None:
    found = _enqueued(where, task, states, args)
    if found:
        raise AssertionError(f"expected no such job, found {[(j.id, j.args) for j in found]}")


async def aenqueued(
    where: JobQueue | Captured,
    task: Task[..., Any] | str | None = None,
    *,
    states: Iterable[JobState | str] | None = None,
    using: AsyncUsing | None = None,
    **args: Any,
) -> list[Job]:
    """:func:`enqueued` for ``async def`` tests; ``using``: the test's AsyncSession or
    AsyncConnection, to read in its transaction."""
    return await run_in_greenlet(using, lambda: _enqueued(where, task, states, args))


async def aassert_enqueued(
    where: JobQueue | Captured,
    task: Task[..., Any] | str,
    *,
    states: Iterable[JobState | str] | None = None,
    using: AsyncUsing | None = None,
    **args: Any,
) -> Job:
    """:func:`assert_enqueued` for ``async def`` tests (see :func:`aenqueued`)."""
    return await run_in_greenlet(using, lambda: _assert_enqueued(where, task, states, args))


async def arefute_enqueued(
    where: JobQueue | Captured,
    task: Task[..., Any] | str,
    *,
    states: Iterable[JobState | str] | None = None,
    using: AsyncUsing | None = None,
    **args: Any,
) -> None:
    """:func:`refute_enqueued` for ``async def`` tests (see :func:`aenqueued`)."""
    await run_in_greenlet(using, lambda: _refute_enqueued(where, task, states, args))


def _includes(actual: Any, expected: dict[str, Any]) -> bool:
    return isinstance(actual, dict) and all(actual.get(k) == v for k, v in expected.items())
