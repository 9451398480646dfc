"""Which database a queue works on, and running its jobs in a caller's connection: the part of
the :class:`~sqljobs.JobQueue` facade behind ``rebind``, ``drain`` and ``adrain``.

Apps build their queue at import time; a test conftest that swaps the engine for a test
database points the queue there with ``jobs.rebind(TestSessionLocal)`` (or an
``async_sessionmaker``). A test that keeps everything in one transaction rolled back after it
(the rollback-per-test pattern) passes its session or connection as ``using=``: the jobs'
rows, their sessions and their bookkeeping then all live in that transaction.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from ._urls import sync_url
from .exceptions import ConfigurationError
from .store import (
    Binding,
    JobStore,
    bound_to,
    dispose_pool_after_fork,
    external_binding,
    set_sqlite_busy_timeout,
)
from .store._pooling import Listening, Pooler
from .store._pooling import configure as configure_pooling
from .worker._async_runner import AsyncRunner
from .worker._drain import DrainResult, drain
from .worker._executor import Executor
from .worker._inline import InlineRunner
from .worker._runner import JobRunner

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

    from . import events
    from .instrumentation import Hooks
    from .registry import TaskRegistry
    from .worker import Worker

T = TypeVar("T")

#: What ``using=`` takes: the session or connection the test's transaction lives in.
Using = Session | Connection
AsyncUsing = "AsyncSession | AsyncConnection"


class QueueBinding:
    """Mixed into :class:`~sqljobs.JobQueue`, which provides the registry, the event bus and
    the async runner."""

    registry: TaskRegistry
    events: events.EventBus
    hooks: Hooks
    _workers: weakref.WeakSet[Worker]
    _get_async_runner: Callable[[], AsyncRunner]
    _pooler: Pooler | None
    _listen: bool | str | Engine
    _home_engine: Engine | None
    _home_listening: Listening | None

    def _bind(
        self,
        session_factory: sessionmaker[Any],
        async_session_factory: async_sessionmaker[Any] | None,
        engine: Engine,
    ) -> None:
        self.session_factory = session_factory
        self.async_session_factory = async_session_factory
        self.engine = engine
        self.store = JobStore(engine)
        self.store.listening = self._listening_for(engine)
        self.runner = JobRunner(
            store=self.store,
            executor=Executor(
                registry=self.registry,
                store=self.store,
                session_factory=session_factory,
                async_session_factory=async_session_factory,
                async_runner=self._get_async_runner,
                hooks=self.hooks,
            ),
            bus=self.events,
            hooks=self.hooks,
        )
        self._inline_runner = InlineRunner(store=self.store, runner=self.runner)
        dispose_pool_after_fork(engine)
        set_sqlite_busy_timeout(engine)

    def _listening_for(self, engine: Engine) -> Listening:
        """How workers of ``engine`` listen: the queue's own plan for the engine it was made
        with (made once: ``listen=`` a URL opens an engine); another database (a rebind)
        keeps the pooler setting, and listens the default way since a ``listen=`` URL or
        Engine names the first database."""
        if self._home_listening is None:
            self._home_engine = engine
            self._home_listening = configure_pooling(
                engine, pooler=self._pooler, listen=self._listen
            )
        if engine is self._home_engine:
            return self._home_listening
        listen = self._listen if isinstance(self._listen, bool) else True
        return configure_pooling(engine, pooler=self._pooler, listen=listen)

    def _dispose_own_listen_engine(self) -> None:
        """Dispose the LISTEN engine made here from ``listen=`` a URL (not one passed in)."""
        if isinstance(self._listen, str) and self._home_listening is not None:
            if self._home_listening.engine is not None:
                self._home_listening.engine.dispose()

    def rebind(
        self,
        session_factory: sessionmaker[Any] | async_sessionmaker[Any],
        *,
        async_session_factory: async_sessionmaker[Any] | None = None,
        engine: Engine | None = None,
        **engine_options: Any,
    ) -> Rebinding:
        """Point the queue at another database, after import: for a test conftest that swaps
        the app's engine for a test database's.

        ``session_factory`` is the new ``sessionmaker``, or an ``async_sessionmaker`` alone:
        then, as :func:`sqljobs.aio.job_queue` does, sqljobs' bookkeeping gets a sync engine
        for the same database (``engine_options`` go to ``create_engine``; it is disposed
        when the binding is undone). Enqueues, workers, ``drain`` and the testing helpers
        all use the new database from then on; tasks stay registered.

        Returns a :class:`Rebinding`: leave it as is, or use it as a context manager (or
        call ``.undo()``) to point the queue back where it was.

        Example:
            >>> @pytest.fixture(scope="session", autouse=True)            # doctest: +SKIP
            ... def test_database():
            ...     with jobs.rebind(async_sessionmaker(test_engine)):
            ...         yield

        Raises:
            ConfigurationError: while a worker of this queue runs (stop it first), or when an
                async task takes a session and no async factory is given.
        """
        if list(self._workers):
            raise ConfigurationError(
                "a worker of this queue is running: stop it (leave the TestClient / lifespan) "
                "before jobs.rebind(...), so no job runs half on each database"
            )
        previous = (self.session_factory, self.async_session_factory, self.engine)
        made: Engine | None = None
        if not isinstance(session_factory, sessionmaker):
            async_session_factory = session_factory
            async_bind = session_factory.kw.get("bind")
            sync_engine = getattr(async_bind, "sync_engine", None)
            if sync_engine is None:
                raise ConfigurationError(
                    "jobs.rebind() needs a sessionmaker, or an async_sessionmaker bound to an "
                    f"AsyncEngine, not {type(session_factory).__name__}: create it with "
                    "async_sessionmaker(create_async_engine(url))"
                )
            made = create_engine(sync_url(sync_engine.url), **engine_options)
            session_factory = sessionmaker(made)
        bind = engine if engine is not None else session_factory.kw.get("bind")
        if not isinstance(bind, Engine):
            raise ConfigurationError(
                "the sessionmaker given to jobs.rebind() is not bound to an Engine: create it "
                "with sessionmaker(engine), or pass jobs.rebind(..., engine=engine)"
            )
        if async_session_factory is None:
            needing = sorted(
                t.name for t in self.registry.values() if t.is_async and t.wants_session
            )
            if needing:
                raise ConfigurationError(
                    f"async task(s) {', '.join(needing)} take a session: pass "
                    "jobs.rebind(..., async_session_factory=async_sessionmaker(test_async_engine))"
                )
        self._bind(session_factory, async_session_factory, bind)
        return Rebinding(self, previous, made)

    def drain(
        self,
        *,
        using: Using | None = None,
        queues: Sequence[str] | None = None,
        ids: Sequence[int] | None = None,
        include_scheduled: bool = False,
        max_jobs: int | None = None,
    ) -> DrainResult:
        """Run due jobs one by one in the calling thread until none is left.

        Deterministic and synchronous, for tests and scripts: same claim, session and outcome
        handling as a worker. ``include_scheduled`` also runs jobs whose ``run_at`` (delay or
        retry backoff) lies in the future. Jobs that come due while it runs (a retry without
        delay, a snooze) run once no other job is available. ``using``: the test's ``Session`` or
        ``Connection``; the jobs are claimed, run and completed in its transaction (each in a
        savepoint), so they see what the test wrote and are rolled back with it. From an
        ``async def`` test, ``await jobs.adrain()`` runs async tasks on the test's loop.
        """
        with bound_to(binding_for(using) if using is not None else None):
            return drain(
                store=self.store,
                runner=self.runner,
                known_queues=self._known_queues,
                queues=queues,
                ids=ids,
                include_scheduled=include_scheduled,
                max_jobs=max_jobs,
            )

    async def adrain(
        self,
        *,
        using: AsyncSession | AsyncConnection | None = None,
        queues: Sequence[str] | None = None,
        ids: Sequence[int] | None = None,
        include_scheduled: bool = False,
        max_jobs: int | None = None,
    ) -> DrainResult:
        """:meth:`drain` for ``async def`` code: async tasks run on the caller's event loop,
        so their sessions come from the app's own async engine safely (its connections
        belong to this loop). ``using``: the test's ``AsyncSession`` or ``AsyncConnection``,
        whose transaction the jobs then run in.

        sqljobs' own short statements (claim, completion) use its sync engine and briefly
        block the loop, as they would in ``drain()``.

        Example:
            >>> result = await jobs.adrain(using=db_session)               # doctest: +SKIP
            >>> assert result.completed == [job_id]
        """

        def run() -> DrainResult:
            return self.drain(
                queues=queues, ids=ids, include_scheduled=include_scheduled, max_jobs=max_jobs
            )

        return await run_in_greenlet(using, run)

    def _known_queues(self) -> list[str]:
        queues, _tasks = self.store.job_names()
        return sorted(set(self.registry.queues()) | set(queues))


class Rebinding:
    """A :meth:`~sqljobs.JobQueue.rebind` done: ``undo()`` (or leaving it as a context
    manager) points the queue back at the database it used before."""

    def __init__(
        self,
        queue: QueueBinding,
        previous: tuple[sessionmaker[Any], async_sessionmaker[Any] | None, Engine],
        made: Engine | None,
    ) -> None:
        self.queue = queue
        self._previous = previous
        self._made = made
        self._lock = threading.Lock()
        self._undone = False

    def __enter__(self) -> QueueBinding:
        return self.queue

    def __exit__(self, *_exc: object) -> None:
        self.undo()

    def undo(self) -> None:
        """Point the queue back where it was (once); dispose the engine the rebind made."""
        with self._lock:
            if self._undone:
                return
            self._undone = True
        self.queue._bind(*self._previous)
        if self._made is not None:
            self._made.dispose()


def binding_for(using: Using) -> Binding:
    """The binding of the test's sync Session or Connection (async ones are refused: they
    need ``await``)."""
    if isinstance(using, (Session, Connection)):
        found = external_binding(using)
        if found is not None:
            return found
        if isinstance(using, Session):
            return Binding(using.connection())
    raise ConfigurationError(
        f"using= takes the test's Session or Connection, not {type(using).__name__}"
        + (
            ": for an AsyncSession or AsyncConnection, await the async helper "
            "(await jobs.adrain(using=...), await testing.aenqueued(...))"
            if "Async" in type(using).__name__
            else ""
        )
    )


async def async_binding_for(using: Any) -> Binding:
    """The binding of the test's AsyncSession or AsyncConnection (its sync connection is used
    from within the AsyncConnection's greenlet only)."""
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

    if isinstance(using, AsyncSession):
        bind = using.bind
        using = bind if isinstance(bind, AsyncConnection) else await using.connection()
    if not isinstance(using, AsyncConnection):
        raise ConfigurationError(
            f"using= takes the test's AsyncSession or AsyncConnection, not "
            f"{type(using).__name__} (for a sync Session, call the sync helper)"
        )
    sync_connection = using.sync_connection
    if sync_connection is None:  # an AsyncConnection not started yet
        sync_connection = (await using.start()).sync_connection
    if sync_connection is None:
        raise ConfigurationError("the AsyncConnection given as using= is closed")
    return Binding(sync_connection, using)


async def run_in_greenlet(using: Any, work: Callable[[], T]) -> T:
    """Run sync ``work`` in an SQLAlchemy greenlet on the running loop (so async tasks it
    runs are awaited there), within ``using``'s transaction if given."""
    if using is None:
        from sqlalchemy.util import greenlet_spawn

        return await greenlet_spawn(work)
    binding = await async_binding_for(using)

    def bound(_connection: Connection) -> T:
        with bound_to(binding):
            return work()

    result: T = await binding.async_connection.run_sync(bound)
    return result
