"""JobQueue: the facade an application holds — tasks, enqueue, workers, inspection."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from . import events
from ._administration import QueueAdministration
from ._binding import QueueBinding
from ._bulk_admin import BulkAdministration
from ._commit_hooks import report_on_commit
from ._graph_queue import GraphAdministration
from ._keyring import Keyring, SecretKeys
from ._task_typing import TaskDecorator, TaskRegistrar
from ._utils import Duration
from .context import job_session
from .exceptions import ConfigurationError
from .flow import Debounce, KeyLimit
from .instrumentation import Hooks
from .job_logs import LogLimits
from .jobs import NewJob
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
from .store import Binding, bound_to, current_binding, external_binding
from .store._pooling import Listening, Pooler
from .unique import Unique
from .worker import Worker
from .worker._async_runner import AsyncRunner
from .worker._drain import DrainResult
from .worker._lifespan import WorkerLifespan
from .worker._parts import WorkerParts

__all__ = ["DrainResult", "JobQueue"]

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = logging.getLogger("sqljobs")


class JobQueue(GraphAdministration, QueueAdministration, BulkAdministration, QueueBinding):
    """Durable background jobs in the application's own database.

    Args:
        session_factory: the app's ``sessionmaker``. Each job attempt gets a new session from
            it (of its class: ``sessionmaker(engine, class_=sqlmodel.Session)`` gives tasks
            SQLModel sessions); the job table lives in the database it is bound to.
        async_session_factory: an ``async_sessionmaker`` for ``async def`` tasks that take a
            ``session`` (they get an ``AsyncSession``).
        engine: the engine for the job table, when ``session_factory`` has no single bind.
        inline: run each job right after it is enqueued (after the caller's commit), in the
            calling thread, before ``commit()`` returns; no worker can take it first. A task's
            exception is raised to that caller unless :attr:`raise_inline_errors` is False.
            For tests and scripts; see :mod:`sqljobs.testing`.
        secret_keys: Fernet keys for ``Secret[...]`` task arguments (``sqljobs[secrets]``):
            a list, or one string of comma-separated keys (``os.environ.get(...)``). The
            first encrypts, all decrypt, so a key is rotated by putting a new one first and
            keeping the old one until no job sealed with it is left. See docs/secrets.md.
        pooler: ``"transaction"`` behind PgBouncer in transaction mode: no server-side
            prepared statements, no LISTEN through it (docs/deploy.md).
        listen: True (LISTEN once a probe shows notifications arrive, else poll), False
            (poll), or a direct PostgreSQL URL/Engine for the LISTEN connection.
        job_logs: how much of each attempt's logging is kept with the job (a
            :class:`~sqljobs.job_logs.LogLimits`; None keeps none). See docs/logs.md.

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
        session_factory: sessionmaker[Any],
        *,
        async_session_factory: async_sessionmaker[Any] | None = None,
        engine: Engine | None = None,
        inline: bool = False,
        secret_keys: SecretKeys | None = None,
        pooler: Pooler | None = None,
        listen: bool | str | Engine = True,
        job_logs: LogLimits | None = LogLimits(),  # noqa: B008 (frozen, so shared safely)
    ) -> None:
        if type(session_factory).__name__ == "async_sessionmaker":
            raise ConfigurationError(
                "JobQueue(async_sessionmaker) needs a sync sessionmaker as well (sqljobs keeps "
                "its own bookkeeping on a sync engine): for an app with only an async engine "
                "use jobs = sqljobs.aio.job_queue(AsyncSessionLocal), which derives it, or "
                "JobQueue(SessionLocal, async_session_factory=AsyncSessionLocal)"
            )
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
        #: How the engine reaches the database (a pooler) and how workers listen: applied to
        #: each store this queue binds (see ``_binding.py``).
        self._pooler = pooler
        self._listen = listen
        self._home_engine: Engine | None = None
        self._home_listening: Listening | None = None
        self.registry = TaskRegistry()
        #: Periodic tasks (see :meth:`periodic`), enqueued by every running worker.
        self.schedules: list[Schedule] = []
        self.events = events.EventBus()
        if job_logs is not None and not isinstance(job_logs, LogLimits):
            raise ConfigurationError(
                f"JobQueue(job_logs=...) takes a sqljobs.LogLimits or None, not {job_logs!r}: "
                "e.g. job_logs=LogLimits(lines=100, bytes=32_000)"
            )
        #: The instrumentation (``sqljobs.otel.instrument``) and log limits its parts use.
        self.hooks = Hooks(job_logs)
        self.inline = inline
        #: Seals ``Secret[...]`` arguments; None without ``secret_keys``.
        self.keyring = Keyring(secret_keys) if secret_keys else None
        #: In inline mode, raise a task's exception to the code that committed its job (the
        #: job is stored failed or discarded first, as a worker would). False only logs it.
        self.raise_inline_errors = True
        #: False keeps the lifespan from starting an in-process worker for this queue
        #: (read at each app startup; see ``sqljobs.testing.no_worker``).
        self.lifespan_workers = True
        self._async_runner: AsyncRunner | None = None
        self._runner_lock = threading.Lock()
        self._workers: weakref.WeakSet[Worker] = weakref.WeakSet()
        self._bind(session_factory, async_session_factory, bind)

    def __repr__(self) -> str:
        return f"<JobQueue {self.engine.url.render_as_string(hide_password=True)!r}>"

    # -- tasks ---------------------------------------------------------------------------

    @property
    def task(self) -> TaskDecorator:
        """Register a function as a task: ``@jobs.task``, ``@jobs.task(queue="mail")`` or
        ``jobs.task(func, queue="mail")``. A ``session`` parameter receives a new session
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
            limit: a :class:`~sqljobs.KeyLimit`: concurrency, rate and FIFO limits per key
                (e.g. per ``user_id``), enforced by every worker process.
            debounce: a :class:`~sqljobs.Debounce`: repeated enqueues of one key within its
                window replace the pending job's arguments and push its run time.
        """
        return TaskRegistrar(self._register_task, {})

    def _register_task(
        self,
        fn: Callable[..., Any],
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff: Backoff | timedelta | float | None = None,
        timeout: Duration | None = None,
        unique: Unique | bool | None = None,
        limit: KeyLimit | None = None,
        debounce: Debounce | None = None,
    ) -> Task[..., Any]:
        task: Task[..., Any] = Task(
            fn,
            owner=self,
            name=name or default_task_name(fn),
            queue=queue,
            priority=priority,
            max_attempts=max_attempts,
            backoff=make_backoff(backoff),
            timeout=timeout_seconds(timeout),
            unique=Unique() if unique is True else (unique or None),
            keyring=self.keyring,
            limit=limit,
            debounce=debounce,
        )
        if task.is_async and task.wants_session and self.async_session_factory is None:
            raise ConfigurationError(
                f"async task {task.name} takes a session: give the JobQueue an "
                "async_session_factory (async_sessionmaker(async_engine)) to open an "
                "AsyncSession for it"
            )
        self.registry.add(task)
        return task

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
    ) -> Callable[[Callable[..., Any]], Task[..., Any]]:
        """Register a task that workers enqueue on a cron schedule, once per slot.

        Example:
            >>> @jobs.periodic("0 3 * * *", timezone="Europe/Paris")    # doctest: +SKIP
            ... def nightly_report(session: Session) -> None: ...

        See :mod:`sqljobs.periodic` for how duplicates are prevented and what happens to
        slots missed while no worker ran (``missed="latest"`` or ``"skip"``).
        """

        def register(fn: Callable[..., Any]) -> Task[..., Any]:
            task = self._register_task(
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
        if session is None:
            session = self._running_jobs_session()
        # A Connection's commit is invisible to us: its jobs are drained after the enqueue
        # instead (best effort), not reserved for an inline run that might never come.
        reserved = self.inline and not isinstance(session, Connection)
        reserve_for = self._inline_runner.reservation if reserved else None
        with self.hooks.current.publishing(list(new_jobs)) as rows:
            ids = self.store.enqueue(session, rows, reserve_for=reserve_for)
        # A session joining a test's outer transaction: its jobs run in that transaction.
        binding = current_binding() or (external_binding(session) if session else None)
        committed = partial(self._committed, reserved=reserved, binding=binding)
        if isinstance(session, Session):
            report_on_commit(session, ids, rows, committed)
        else:  # committed already, or a Connection whose commit we cannot see
            committed(ids, rows)
        return ids

    def _running_jobs_session(self) -> Session | None:
        """Inside a running task that takes a session (on this database), an enqueue without
        one joins the job's session: the new jobs commit with the job, exactly once, and on
        SQLite the enqueue does not wait for the write lock the job's own session holds."""
        joined = job_session(self.engine)
        if joined is None or isinstance(joined, Session):
            return joined
        raise ConfigurationError(
            "enqueue without a session inside an async task that takes a session: its "
            "AsyncSession holds the job's transaction (on SQLite, the write lock), so pass "
            "it: await other_task.enqueue_async(session, ...)"
        )

    async def enqueue_many_async(
        self, session: AsyncSession, new_jobs: Iterable[NewJob]
    ) -> list[int]:
        """:meth:`enqueue_many` in an ``AsyncSession``'s transaction."""
        reserved = self.inline
        reserve_for = self._inline_runner.reservation if reserved else None
        with self.hooks.current.publishing(list(new_jobs)) as rows:
            ids = await session.run_sync(
                lambda sync_session: self.store.enqueue(sync_session, rows, reserve_for=reserve_for)
            )
        bind: Any = session.bind  # an AsyncConnection: the test's outer transaction
        connection = getattr(bind, "sync_connection", None)
        binding = Binding(connection, bind) if isinstance(connection, Connection) else None
        committed = partial(self._committed, reserved=reserved, binding=binding)
        report_on_commit(session.sync_session, ids, rows, committed)
        return ids

    def _committed(
        self, ids: list[int], rows: list[NewJob], *, reserved: bool, binding: Binding | None
    ) -> None:
        self.events.emit(events.JOB_ENQUEUED, job_ids=ids, new_jobs=rows)
        with bound_to(binding):
            if reserved:
                self._inline_runner.run(ids, raise_errors=self.raise_inline_errors)
            else:
                self._wake(ids)

    def _wake(self, ids: Sequence[int]) -> None:
        for worker in list(self._workers):
            worker.notify()
        if self.inline:
            self.drain(ids=ids)

    # -- workers -------------------------------------------------------------------------

    def worker(self, **options: Any) -> Worker:
        """A :class:`~sqljobs.Worker` for this queue (not started)."""
        return Worker(self, **options)

    def worker_parts(self) -> WorkerParts:
        """What a :class:`~sqljobs.Worker` of this queue runs jobs with."""
        return WorkerParts(
            registry=self.registry,
            store=self.store,
            runner=self.runner,
            bus=self.events,
            schedules=self.schedules,
            async_session_factory=self.async_session_factory,
            on_start=self.attach,
            on_stop=self.detach,
        )

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
        connections opened there (by a private copy of the app's async engine: see
        ``worker/_loops.py``), which belong to that loop; and the LISTEN engine made from
        ``listen=`` a URL."""
        self._dispose_own_listen_engine()
        with self._runner_lock:
            runner, self._async_runner = self._async_runner, None
        if runner is not None:
            runner.close()

    def lifespan(self, app: object = None) -> AbstractAsyncContextManager[Any]:
        """An in-process worker living as long as an ASGI app: ``FastAPI(lifespan=jobs.lifespan)``.

        Starts a worker (default options) after startup; on shutdown stops claiming, lets
        running jobs finish within 30s and releases the rest. For options, or to compose with
        the app's own lifespan, use :func:`sqljobs.fastapi.lifespan`.
        """

        return WorkerLifespan(self)(app)
