"""JobQueue: the facade an application holds — tasks, enqueue, workers, inspection."""

from __future__ import annotations

import logging
import os
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar, overload

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from . import _dialects, events
from ._async_runner import AsyncRunner
from ._executor import Executor
from ._outcomes import Cancelled, Completed, Failed, LeaseLost, Outcome, Snoozed
from ._runner import JobRunner
from ._utils import Duration, to_timedelta, utcnow
from .exceptions import ConfigurationError
from .jobs import Job, JobState
from .periodic import Missed, Schedule
from .registry import (
    DEFAULT_MAX_ATTEMPTS,
    Task,
    TaskRegistry,
    default_task_name,
    make_backoff,
    timeout_seconds,
)
from .retry import Backoff
from .store import JobStore, NewJob
from .unique import Unique

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from .worker import Worker

log = logging.getLogger("sqljobs")
#: session.info key: jobs enqueued in the session's transaction, reported when it commits.
_PENDING = "sqljobs_pending"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class DrainResult:
    """What :meth:`JobQueue.drain` ran, by outcome."""

    completed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    discarded: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    snoozed: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(
            map(len, (self.completed, self.failed, self.discarded, self.cancelled, self.snoozed))
        )


class JobQueue:
    """Durable background jobs in the application's own database.

    Args:
        session_factory: the app's ``sessionmaker``. Each job attempt gets a new session from
            it; the job table lives in the database it is bound to.
        async_session_factory: an ``async_sessionmaker`` for ``async def`` tasks that take a
            ``session`` (they get an ``AsyncSession``).
        engine: the engine for the job table, when ``session_factory`` has no single bind.
        inline: run each job right after it is enqueued (after the caller's commit), in the
            calling thread. For tests and scripts; see :mod:`sqljobs.testing`.

    Example:
        >>> engine = create_engine("sqlite:///app.db")
        >>> SessionLocal = sessionmaker(engine)
        >>> jobs = JobQueue(SessionLocal)
        >>> jobs.create_schema()
        >>> @jobs.task(max_attempts=5)
        ... def send_welcome(session: Session, user_id: int) -> None: ...
        >>> job_id = send_welcome.enqueue(user_id=1)
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        async_session_factory: async_sessionmaker[AsyncSession] | None = None,
        engine: Engine | None = None,
        inline: bool = False,
    ) -> None:
        if not isinstance(session_factory, sessionmaker):
            raise ConfigurationError(
                "JobQueue needs the app's sessionmaker (e.g. SessionLocal = sessionmaker(engine)),"
                f" not {type(session_factory).__name__}: each job opens its own session from it"
            )
        bind = engine if engine is not None else session_factory.kw.get("bind")
        if not isinstance(bind, Engine):
            raise ConfigurationError(
                "the sessionmaker is not bound to an Engine: create it with "
                "sessionmaker(engine), or pass JobQueue(..., engine=engine)"
            )
        self.session_factory = session_factory
        self.async_session_factory = async_session_factory
        self.engine = bind
        self.store = JobStore(bind)
        self.registry = TaskRegistry()
        #: Periodic tasks (see :meth:`periodic`), enqueued by every running worker.
        self.schedules: list[Schedule] = []
        self.events = events.EventBus()
        self.inline = inline
        self._async_runner: AsyncRunner | None = None
        self._runner_lock = threading.Lock()
        self.runner = JobRunner(
            store=self.store,
            executor=Executor(
                registry=self.registry,
                store=self.store,
                session_factory=session_factory,
                async_session_factory=async_session_factory,
                async_runner=self._get_async_runner,
            ),
            bus=self.events,
        )
        self._workers: weakref.WeakSet[Worker] = weakref.WeakSet()
        _dispose_after_fork(bind)
        _dialects.set_sqlite_busy_timeout(bind)

    def __repr__(self) -> str:
        return f"<JobQueue {self.engine.url.render_as_string(hide_password=True)!r}>"

    # -- tasks ---------------------------------------------------------------------------

    @overload
    def task(
        self,
        func: F,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff: Backoff | timedelta | float | None = None,
        timeout: Duration | None = None,
        unique: Unique | bool | None = None,
    ) -> Task[Any]: ...

    @overload
    def task(
        self,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff: Backoff | timedelta | float | None = None,
        timeout: Duration | None = None,
        unique: Unique | bool | None = None,
    ) -> Callable[[F], Task[Any]]: ...

    def task(
        self,
        func: F | None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff: Backoff | timedelta | float | None = None,
        timeout: Duration | None = None,
        unique: Unique | bool | None = None,
    ) -> Task[Any] | Callable[[F], Task[Any]]:
        """Register a function as a task. A ``session`` parameter receives a new session
        for each attempt; the job's completion commits with it.

        Args:
            name: the name stored on job rows (default ``module.qualname``). Keep it stable
                across deploys: jobs already enqueued look their task up by it.
            queue: the queue jobs go to unless ``enqueue(queue=...)`` says otherwise.
            priority: lower runs first within a queue.
            max_attempts: attempts before the job is ``discarded``.
            backoff: a :class:`~sqljobs.Backoff`, or seconds used as its base.
            timeout: seconds; an async task is cancelled, a sync task's transaction is rolled
                back when it returns late (on PostgreSQL its statements also time out).
            unique: ``True`` or a :class:`~sqljobs.Unique`: a duplicate enqueue returns the
                job that already holds the key instead of inserting another.
        """

        def register(fn: F) -> Task[Any]:
            task: Task[Any] = Task(
                fn,
                owner=self,
                name=name or default_task_name(fn),
                queue=queue,
                priority=priority,
                max_attempts=max_attempts,
                backoff=make_backoff(backoff),
                timeout=timeout_seconds(timeout),
                unique=Unique() if unique is True else (unique or None),
            )
            if task.is_async and task.wants_session and self.async_session_factory is None:
                raise ConfigurationError(
                    f"async task {task.name} takes a session: give the JobQueue an "
                    "async_session_factory (async_sessionmaker(async_engine)) to open an "
                    "AsyncSession for it"
                )
            self.registry.add(task)
            return task

        return register(func) if func is not None else register

    def periodic(
        self,
        cron: str,
        /,
        *,
        timezone: str = "UTC",
        args: dict[str, Any] | None = None,
        missed: Missed = "latest",
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff: Backoff | timedelta | float | None = None,
        timeout: Duration | None = None,
    ) -> Callable[[F], Task[Any]]:
        """Register a task that workers enqueue on a cron schedule, once per slot.

        Example:
            >>> @jobs.periodic("0 3 * * *", timezone="Europe/Paris")    # doctest: +SKIP
            ... def nightly_report(session: Session) -> None: ...

        See :mod:`sqljobs.periodic` for how duplicates are prevented and what happens to
        slots missed while no worker ran (``missed="latest"`` or ``"skip"``).
        """

        def register(fn: F) -> Task[Any]:
            task = self.task(
                fn,
                name=name,
                queue=queue,
                priority=priority,
                max_attempts=max_attempts,
                backoff=backoff,
                timeout=timeout,
            )
            self.schedules.append(
                Schedule(task=task, cron=cron, timezone=timezone, args=args or {}, missed=missed)
            )
            return task

        return register

    # -- enqueue -------------------------------------------------------------------------

    def enqueue_many(
        self, session: Session | Connection | None, new_jobs: Iterable[NewJob]
    ) -> list[int]:
        """Insert many jobs at once (build them with ``task.prepare(**kwargs)``).

        Example:
            >>> jobs.enqueue_many(db, [refresh.prepare(record_id=i) for i in ids])  # doctest: +SKIP
        """
        rows = list(new_jobs)
        ids = self.store.enqueue(session, rows)
        if isinstance(session, Session):
            self._on_commit(session, ids, rows)
        else:  # committed already, or a Connection whose commit we cannot see
            self._committed(ids, rows)
        return ids

    async def enqueue_many_async(
        self, session: AsyncSession, new_jobs: Iterable[NewJob]
    ) -> list[int]:
        """:meth:`enqueue_many` in an ``AsyncSession``'s transaction."""
        rows = list(new_jobs)
        ids = await session.run_sync(lambda sync_session: self.store.enqueue(sync_session, rows))
        self._on_commit(session.sync_session, ids, rows)
        return ids

    def _on_commit(self, session: Session, ids: list[int], rows: list[NewJob]) -> None:
        """Report the jobs and wake workers once the caller's transaction commits."""
        pending: list[tuple[list[int], list[NewJob]]] | None = session.info.get(_PENDING)
        if pending is None:
            pending = session.info[_PENDING] = []
            event.listen(session, "after_commit", self._session_committed)
            event.listen(session, "after_rollback", _session_rolled_back)
        pending.append((ids, rows))

    def _session_committed(self, session: Session) -> None:
        pending = session.info.get(_PENDING) or []
        session.info[_PENDING] = []
        for ids, rows in pending:
            self._committed(ids, rows)

    def _committed(self, ids: list[int], rows: list[NewJob]) -> None:
        self.events.emit(events.JOB_ENQUEUED, job_ids=ids, new_jobs=rows)
        self._wake(ids)

    def _wake(self, ids: list[int]) -> None:
        for worker in list(self._workers):
            worker.notify()
        if self.inline:
            self.drain(ids=ids)

    # -- workers -------------------------------------------------------------------------

    def worker(self, **options: Any) -> Worker:
        """A :class:`~sqljobs.Worker` for this queue (not started)."""
        from .worker import Worker

        return Worker(self, **options)

    def attach(self, worker: Worker) -> None:
        self._workers.add(worker)

    def detach(self, worker: Worker) -> None:
        self._workers.discard(worker)

    def _get_async_runner(self) -> AsyncRunner:
        with self._runner_lock:
            if self._async_runner is None:
                self._async_runner = AsyncRunner()
            return self._async_runner

    def close(self) -> None:
        """Stop the event loop used by async tasks (if sqljobs started one), first closing the
        async engine's pooled connections, which belong to that loop."""
        with self._runner_lock:
            runner, self._async_runner = self._async_runner, None
        if runner is None:
            return
        factory = self.async_session_factory
        async_engine = factory.kw.get("bind") if factory is not None else None
        runner.close(cleanup=async_engine.dispose if async_engine is not None else None)

    def lifespan(self, app: object = None) -> AbstractAsyncContextManager[Any]:
        """An in-process worker living as long as an ASGI app: ``FastAPI(lifespan=jobs.lifespan)``.

        Starts a worker (default options) after startup; on shutdown stops claiming, lets
        running jobs finish within 30s and releases the rest. For options, or to compose with
        the app's own lifespan, use :func:`sqljobs.fastapi.lifespan`.
        """
        from ._lifespan import WorkerLifespan

        return WorkerLifespan(self)(app)

    def drain(
        self,
        *,
        queues: Sequence[str] | None = None,
        ids: Sequence[int] | None = None,
        include_scheduled: bool = False,
        max_jobs: int | None = None,
    ) -> DrainResult:
        """Run due jobs one by one in the calling thread until none is left.

        Deterministic and synchronous, for tests and scripts: same claim, session and outcome
        handling as a worker. ``include_scheduled`` also runs jobs whose ``run_at`` (delay or
        retry backoff) lies in the future.
        """
        worker_id = f"drain:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        chosen = list(queues) if queues else self._known_queues()
        result = DrainResult()
        lease = timedelta(minutes=5)
        while max_jobs is None or result.total < max_jobs:
            self.store.stage(until=utcnow() + timedelta(days=36500) if include_scheduled else None)
            claimed = self.store.claim(
                worker_id=worker_id, queues=chosen, limit=1, lease=lease, ids=ids
            )
            if not claimed and not queues:
                # A job that ran may have enqueued into a queue we had not seen yet.
                known = self._known_queues()
                if set(known) - set(chosen):
                    chosen = known
                    continue
            if not claimed:
                break
            job = claimed[0]
            _record(result, job, self.runner.run(job))
        return result

    def _known_queues(self) -> list[str]:
        queues, _tasks = self.store.job_names()
        return sorted(set(self.registry.queues()) | set(queues))

    # -- inspection and administration ---------------------------------------------------

    def create_schema(self) -> None:
        """Create the job tables if missing (for quick starts; use Alembic in production)."""
        self.store.create_schema()

    def drop_schema(self) -> None:
        self.store.drop_schema()

    def get(self, job_id: int) -> Job:
        """A snapshot of one job (state, attempts, errors, result)."""
        return self.store.get(job_id)

    def list_jobs(
        self,
        *,
        state: JobState | str | Iterable[JobState | str] | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Job]:
        """Jobs, newest first, filtered by state(s), queue and task name."""
        states = [state] if isinstance(state, (str, JobState)) else state
        return self.store.list_jobs(
            states=states, queue=queue, task=task, limit=limit, offset=offset
        )

    def counts(self) -> dict[tuple[str, JobState], int]:
        """Number of jobs per ``(queue, state)``."""
        return self.store.count_by_state()

    def retry(self, job_id: int) -> Job:
        """Run a discarded, cancelled or waiting job again now."""
        job = self.store.retry(job_id)
        self.events.emit(events.JOB_RETRIED, job=job)
        self._wake([job_id])
        return job

    def cancel(self, job_id: int) -> Job:
        """Cancel a job: a waiting one never starts, a running one can no longer commit."""
        job = self.store.cancel(job_id)
        self.events.emit(events.JOB_CANCELLED, job=job, outcome=None, duration=None)
        return job

    def prune(self, *, older_than: Duration, states: Iterable[JobState | str] | None = None) -> int:
        """Delete finished jobs older than ``older_than``; returns how many."""
        return self.store.prune(
            older_than=to_timedelta(older_than, name="older_than"), states=states
        )

    def configure_queue(
        self,
        name: str,
        *,
        global_limit: int | None = None,
        rate_limit: tuple[int, Duration] | None = None,
    ) -> None:
        """Limit a queue across all workers: at most ``global_limit`` of its jobs run at once,
        at most ``rate_limit=(n, period)`` start per period. Stored in the database; workers
        pick changes up within seconds. Call again with ``None`` to lift a limit.

        Example:
            >>> jobs.configure_queue("mail", global_limit=2, rate_limit=(100, 60))  # doctest: +SKIP
        """
        if global_limit is not None and global_limit < 1:
            raise ConfigurationError("global_limit must be at least 1 (or None for no limit)")
        count, period = rate_limit if rate_limit is not None else (None, None)
        if count is not None and count < 1:
            raise ConfigurationError("a rate limit allows at least 1 job per period")
        self.store.configure_queue(
            name,
            global_limit=global_limit,
            rate_limit=count,
            rate_period=None if period is None else to_timedelta(period, name="rate period"),
        )

    def wait(self, job_id: int, *, timeout: Duration = 30.0, poll: float = 0.05) -> Job:
        """Block until the job is finished (or ``timeout`` passes); return its snapshot."""
        import time

        deadline = time.monotonic() + to_timedelta(timeout, name="timeout").total_seconds()
        while True:
            job = self.get(job_id)
            if job.state.is_finished or time.monotonic() >= deadline:
                return job
            time.sleep(poll)


def _record(result: DrainResult, job: Job, outcome: Outcome) -> None:
    if isinstance(outcome, Completed):
        result.completed.append(job.id)
    elif isinstance(outcome, Failed):
        (result.failed if outcome.retry_at is not None else result.discarded).append(job.id)
    elif isinstance(outcome, Cancelled):
        result.cancelled.append(job.id)
    elif isinstance(outcome, Snoozed):
        result.snoozed.append(job.id)
    elif isinstance(outcome, LeaseLost):
        pass


def _session_rolled_back(session: Session) -> None:
    session.info[_PENDING] = []


_FORK_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _dispose_after_fork(engine: Engine) -> None:
    """A forked child must not reuse the parent's pooled connections (it corrupts them)."""
    _FORK_ENGINES.add(engine)


def _after_fork_in_child() -> None:
    for engine in list(_FORK_ENGINES):
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
