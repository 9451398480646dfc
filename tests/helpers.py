"""Test helpers: wait for a condition without bare sleeps, count effects."""

from __future__ import annotations

import importlib
import os
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from types import ModuleType
from typing import Any, Literal, TypeVar

from sqlalchemy import Connection, Engine, event, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import JobQueue
from tests.conftest import Counter

T = TypeVar("T")


def eventually(
    check: Callable[[], T | Literal[False] | None],
    *,
    timeout: float = 30.0,
    interval: float = 0.02,
    describe: Callable[[], str] | None = None,
) -> T:
    """Poll ``check`` until it returns something truthy (``cond and value`` returns the
    value); fail after ``timeout`` seconds, with what ``describe`` says of the state then."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            state = f"; {describe()}" if describe is not None else ""
            raise AssertionError(
                f"condition not met within {timeout}s (last value {value!r}){state}"
            )
        time.sleep(interval)


def add_counters(factory: sessionmaker[Session], count: int = 1) -> None:
    with factory() as session:
        session.add_all(Counter(id=i, n=0) for i in range(1, count + 1))
        session.commit()


def increment(session: Session, counter_id: int = 1) -> None:
    """An atomic increment: safe under concurrency on every database."""
    session.execute(update(Counter).where(Counter.id == counter_id).values(n=Counter.n + 1))


def counter_total(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return sum(session.scalars(select(Counter.n)))


def all_finished(jobs: JobQueue, job_ids: Iterable[int]) -> bool:
    """Every one of ``job_ids`` is completed, discarded or cancelled."""
    return all(jobs.get(job_id).state.is_finished for job_id in job_ids)


def finished(jobs: JobQueue, *job_ids: int) -> bool:
    """:func:`all_finished` for a few ids: ``eventually(lambda: finished(jobs, a, b))``."""
    return all_finished(jobs, job_ids)


def wait_until_it_outlived_its_lease(jobs: JobQueue, job_id: int, lease: float) -> None:
    """Wait until running job ``job_id`` has held its lease for longer than ``lease`` seconds:
    its heartbeat renewed the lease at or after the moment the first one would have expired.
    Tests of heartbeats release the job after this instead of sleeping past the lease."""
    first_expiry = eventually(lambda: jobs.get(job_id).lease_expires_at)
    eventually(
        lambda: (
            (expiry := jobs.get(job_id).lease_expires_at) is not None
            and (expiry - first_expiry).total_seconds() >= lease
        )
    )


class EventLog:
    """Records the events a JobQueue emits, for tests that wait on them instead of sleeping.

    Example:
        >>> log = EventLog(jobs, events.WORKER_IDLE)                    # doctest: +SKIP
        >>> log.wait_for(events.WORKER_IDLE, reason="no jobs")          # doctest: +SKIP
    """

    def __init__(self, jobs: JobQueue, *names: str) -> None:
        self._lock = threading.Lock()
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self._unsubscribe = [jobs.events.subscribe(name, self._record) for name in names]

    def _record(self, name: str, data: dict[str, Any]) -> None:
        with self._lock:
            self.seen.append((name, data))

    def matching(self, name: str, **fields: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [
                data
                for seen, data in self.seen
                if seen == name and all(data.get(k) == v for k, v in fields.items())
            ]

    def count(self, name: str, **fields: Any) -> int:
        return len(self.matching(name, **fields))

    def wait_for(
        self, name: str, *, more_than: int = 0, timeout: float = 30.0, **fields: Any
    ) -> dict[str, Any]:
        """Wait until more than ``more_than`` such events were seen; return the last."""
        found = eventually(
            lambda: (found := self.matching(name, **fields)) and len(found) > more_than and found,
            timeout=timeout,
        )
        return found[-1]

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (tests only ever listen on loopback)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def app_module(name: str, db_url: str, **env: str) -> Iterator[ModuleType]:
    """Import the test app module ``name`` afresh, bound to ``db_url`` (it reads
    ``SQLJOBS_TEST_DATABASE_URL`` at import, as an app reads its settings), with ``env`` set
    while it is imported and used; at exit close its queue, dispose its engine, restore the
    environment and forget the module, so the next test imports it again."""
    settings = {"SQLJOBS_TEST_DATABASE_URL": db_url, **env}
    saved = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    sys.modules.pop(name, None)
    try:
        module = importlib.import_module(name)
        try:
            yield module
        finally:
            jobs = getattr(module, "jobs", None)
            if jobs is not None:
                jobs.close()
            module.engine.dispose()
    finally:
        sys.modules.pop(name, None)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def sqlite_savepoints(engine: Engine) -> None:
    """SQLAlchemy's recipe for real SAVEPOINTs on pysqlite/aiosqlite (their driver begins and
    ends transactions on its own otherwise): what a rollback-per-test fixture on SQLite needs.
    For an AsyncEngine pass ``engine.sync_engine``."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")


@contextmanager
def rolled_back_transaction(engine: Engine) -> Iterator[Session]:
    """The rollback-per-test pattern: a Session joining one outer transaction (its commits
    release savepoints), rolled back at the end. ``engine`` went through
    :func:`sqlite_savepoints` on SQLite."""
    with engine.connect() as connection:
        outer = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            session.close()
            outer.rollback()


@asynccontextmanager
async def async_rolled_back_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """:func:`rolled_back_transaction` for an AsyncEngine (an AsyncSession on the outer
    transaction's AsyncConnection)."""
    async with engine.connect() as connection:
        outer = await connection.begin()
        session = AsyncSession(bind=connection, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            await session.close()
            await outer.rollback()


def lock_waits(engine: Engine, dialect: str) -> int:
    """How many sessions of this test's database wait for a row lock right now."""
    with engine.connect() as conn:
        if dialect == "postgresql":
            query = (
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        else:
            query = (
                "SELECT count(*) FROM information_schema.innodb_trx t "
                "JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id "
                "WHERE t.trx_state = 'LOCK WAIT' AND p.db = database()"
            )
        return int(conn.execute(text(query)).scalar_one())
