"""``async def`` tasks on each database: an AsyncSession of their own per attempt, effects
and completion in one transaction, retries, timeouts, leases, and sync + async tasks in one
queue and one worker."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import BigInteger, Engine, Integer, String, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import NullPool

from sqljobs import JobQueue, JobState
from sqljobs.aio import async_url
from tests import capabilities
from tests.conftest import Counter
from tests.helpers import (
    add_counters,
    all_finished,
    counter_total,
    eventually,
    increment,
    wait_until_it_outlived_its_lease,
)


class ProbeBase(DeclarativeBase):
    pass


class Attempt(ProbeBase):
    """What one attempt of the probe task saw: its session, its connection, when it ran."""

    __tablename__ = "test_async_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    session_token: Mapped[str] = mapped_column(String(40))
    connection_token: Mapped[str] = mapped_column(String(80))
    backend_id: Mapped[str] = mapped_column(String(40))
    started_ns: Mapped[int] = mapped_column(BigInteger)
    ended_ns: Mapped[int] = mapped_column(BigInteger)


def create_async_engine(url: str, **options: Any) -> AsyncEngine:
    return _create_async_engine(url, **options)


@pytest.fixture
def async_engine(db_url: str, engine: Engine) -> AsyncEngine:
    ProbeBase.metadata.drop_all(engine)
    ProbeBase.metadata.create_all(engine)
    return create_async_engine(async_url(db_url), pool_size=10)


def make_queue(session_factory: sessionmaker[Session], async_engine: AsyncEngine) -> JobQueue:
    queue = JobQueue(
        session_factory,
        async_session_factory=async_sessionmaker(async_engine, expire_on_commit=False),
    )
    queue.create_schema()
    return queue


def close_queue(queue: JobQueue, async_engine: AsyncEngine) -> None:
    # close() disposes the async engine on sqljobs' own loop, where its connections live.
    queue.close()


@pytest.fixture
def ajobs(session_factory: sessionmaker[Session], async_engine: AsyncEngine) -> Iterator[JobQueue]:
    queue = make_queue(session_factory, async_engine)
    yield queue
    close_queue(queue, async_engine)


async def async_increment(session: AsyncSession, counter_id: int = 1) -> None:
    await session.execute(update(Counter).where(Counter.id == counter_id).values(n=Counter.n + 1))


async def backend_id(session: AsyncSession) -> str:
    """The server's id for the connection (PostgreSQL/MariaDB), or the driver object's id."""
    connection = await session.connection()
    name = connection.dialect.name
    if name == "postgresql":
        return str((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())
    if name in ("mysql", "mariadb"):
        return str((await session.execute(text("SELECT CONNECTION_ID()"))).scalar_one())
    raw = await connection.get_raw_connection()
    return f"sqlite:{id(raw.driver_connection)}"


def overlapping(a: Attempt, b: Attempt) -> bool:
    return a.started_ns < b.ended_ns and b.started_ns < a.ended_ns


def max_overlap(attempts: list[Attempt]) -> int:
    edges = sorted([(a.started_ns, 1) for a in attempts] + [(a.ended_ns, -1) for a in attempts])
    current = peak = 0
    for _at, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def test_each_attempt_gets_its_own_async_session_and_connection_under_concurrency_8(
    ajobs: JobQueue, session_factory: sessionmaker[Session], dialect: str
) -> None:
    add_counters(session_factory)
    total = 24 if dialect == "sqlite" else 40

    @ajobs.task(name="probe")
    async def probe(session: AsyncSession, n: int) -> str:
        if "probe" in session.info:  # a session handed to a second attempt: fail the test
            raise RuntimeError(f"session of attempt {session.info['probe']} reused")
        token = session.info["probe"] = uuid.uuid4().hex
        raw = await (await session.connection()).get_raw_connection()
        connection_token = f"{id(raw.driver_connection)}"
        server_id = await backend_id(session)
        started = time.monotonic_ns()
        await asyncio.sleep(0.15)
        await async_increment(session)
        session.add(
            Attempt(
                n=n,
                session_token=token,
                connection_token=connection_token,
                backend_id=server_id,
                started_ns=started,
                ended_ns=time.monotonic_ns(),
            )
        )
        return token

    ids = ajobs.enqueue_many(None, [probe.prepare(n=n) for n in range(total)])
    with ajobs.worker(concurrency=8, poll_interval=0.05):
        eventually(lambda: all_finished(ajobs, ids), timeout=60)

    done = [ajobs.get(i) for i in ids]
    assert {job.state for job in done} == {JobState.COMPLETED}
    # First attempts, no recorded error: a failure in the task would show up here.
    assert [(job.attempt, job.errors) for job in done] == [(1, ())] * total
    assert counter_total(session_factory) == total  # each effect committed exactly once
    with session_factory() as db:
        attempts = list(db.scalars(select(Attempt)))
    assert sorted(a.n for a in attempts) == list(range(total))
    assert len({a.session_token for a in attempts}) == total  # never a shared session
    assert {ajobs.get(i).result for i in ids} == {a.session_token for a in attempts}
    for a in attempts:
        for b in attempts:
            if a is not b and overlapping(a, b):
                assert a.connection_token != b.connection_token
                assert a.backend_id != b.backend_id
    if capabilities.has("concurrent_writers", dialect):  # else an attempt holds the lock
        assert max_overlap(attempts) >= 4, "the attempts did not really run concurrently"


def test_a_failed_attempt_rolls_back_its_writes_and_the_retry_applies_them_once(
    ajobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory)
    calls: list[int] = []

    @ajobs.task(max_attempts=3, backoff=0)
    async def flaky(session: AsyncSession) -> str:
        calls.append(1)
        await async_increment(session)
        await session.flush()
        if len(calls) == 1:
            raise RuntimeError("first attempt fails after writing")
        return "ok"

    job_id = flaky.enqueue()
    with ajobs.worker(concurrency=2, poll_interval=0.05):
        job = eventually(lambda: (j := ajobs.get(job_id)).state.is_finished and j)
    assert job.state is JobState.COMPLETED and job.result == "ok"
    assert job.attempt == 2
    assert [(e.attempt, e.type, e.message) for e in job.errors] == [
        (1, "RuntimeError", "first attempt fails after writing")
    ]
    assert counter_total(session_factory) == 1


def test_a_timeout_cancels_the_task_and_discards_its_writes(
    ajobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory)
    cancelled = threading.Event()

    @ajobs.task(max_attempts=1, timeout=0.3)
    async def hangs(session: AsyncSession) -> None:
        await async_increment(session)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    job_id = hangs.enqueue()
    with ajobs.worker(concurrency=1, poll_interval=0.05):
        job = eventually(lambda: (j := ajobs.get(job_id)).state.is_finished and j)
    assert cancelled.is_set()  # its 60 s sleep was cancelled, not waited out
    assert job.state is JobState.DISCARDED
    assert job.errors[-1].type == "sqljobs.exceptions.JobTimeout"
    assert "timeout" in job.errors[-1].message
    assert counter_total(session_factory) == 0


def test_sync_and_async_tasks_run_in_one_queue_and_one_worker(
    ajobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory, 2)
    threads: set[str] = set()

    @ajobs.task(name="sync_bump")
    def sync_bump(session: Session) -> None:
        threads.add(threading.current_thread().name)
        increment(session, 1)

    @ajobs.task(name="async_bump")
    async def async_bump(session: AsyncSession) -> None:
        await async_increment(session, 2)

    assert sync_bump.queue == async_bump.queue == "default"
    rows = [sync_bump.prepare() for _ in range(10)] + [async_bump.prepare() for _ in range(10)]
    ids = ajobs.enqueue_many(None, rows)
    with ajobs.worker(concurrency=4, poll_interval=0.05) as worker:
        eventually(lambda: all_finished(ajobs, ids))
        # A job's row is final when its session commits; the worker counts it just after.
        eventually(lambda: worker.stats.completed == 20)
    with session_factory() as db:
        counts = {row.id: row.n for row in db.execute(select(Counter.id, Counter.n))}
    assert counts == {1: 10, 2: 10}
    assert all(name.startswith("sqljobs-") for name in threads)


def test_an_async_task_holds_its_lease_while_it_runs_longer_than_the_lease(
    ajobs: JobQueue,
) -> None:
    # No session: on SQLite a task's session holds the write lock (BEGIN IMMEDIATE), which
    # also holds off the heartbeat's renewal this test waits to see.
    release = threading.Event()

    @ajobs.task
    async def slow() -> str:
        await asyncio.to_thread(release.wait, 60)
        return "done"

    job_id = slow.enqueue()
    with ajobs.worker(concurrency=1, poll_interval=0.05, lease=2.0, heartbeat_interval=0.2):
        wait_until_it_outlived_its_lease(ajobs, job_id, lease=2.0)
        release.set()
        job = eventually(lambda: (j := ajobs.get(job_id)).state.is_finished and j)
    assert job.state is JobState.COMPLETED
    assert job.attempt == 1 and job.errors == ()


def test_enqueue_async_joins_the_async_sessions_transaction(
    ajobs: JobQueue, session_factory: sessionmaker[Session], db_url: str
) -> None:
    add_counters(session_factory)

    @ajobs.task
    async def bump(session: AsyncSession, tag: str) -> None:
        await async_increment(session)

    async def request() -> int:
        # The endpoint side: its own async engine on its own loop (as an app would have).
        endpoint_engine = create_async_engine(async_url(db_url), poolclass=NullPool)
        try:
            async with AsyncSession(endpoint_engine) as db:
                await bump.enqueue_async(db, tag="rolled back")
                await db.rollback()
                committed = await bump.enqueue_async(db, tag="committed")
                await db.commit()
            return committed
        finally:
            await endpoint_engine.dispose()

    committed = asyncio.run(request())
    assert [(job.id, job.args) for job in ajobs.list_jobs()] == [(committed, {"tag": "committed"})]
    with ajobs.worker(concurrency=1, poll_interval=0.05):
        eventually(lambda: ajobs.get(committed).state is JobState.COMPLETED)
    assert counter_total(session_factory) == 1


@pytest.mark.dialects("postgresql", reason="psycopg and asyncpg are PostgreSQL drivers")
def test_psycopg_async_works_like_asyncpg(
    session_factory: sessionmaker[Session], db_url: str, engine: Engine
) -> None:
    add_counters(session_factory)
    psycopg_engine = create_async_engine(async_url(db_url, driver="psycopg_async"))
    assert psycopg_engine.dialect.is_async and psycopg_engine.dialect.driver == "psycopg"
    queue = make_queue(session_factory, psycopg_engine)
    try:

        @queue.task(max_attempts=2, backoff=0)
        async def bump(session: AsyncSession, fail: bool) -> None:
            await async_increment(session)
            if fail:
                raise RuntimeError("rolled back")

        ids = [bump.enqueue(fail=False) for _ in range(8)] + [bump.enqueue(fail=True)]
        with queue.worker(concurrency=4, poll_interval=0.05):
            eventually(lambda: all_finished(queue, ids))
        assert [queue.get(i).state for i in ids] == [JobState.COMPLETED] * 8 + [JobState.DISCARDED]
        assert counter_total(session_factory) == 8
    finally:
        close_queue(queue, psycopg_engine)


def test_a_graph_enqueued_in_an_async_session_exists_only_if_it_commits(
    ajobs: JobQueue, db_url: str
) -> None:
    @ajobs.task
    async def number(value: int) -> int:
        return value

    async def request() -> int:
        endpoint_engine = create_async_engine(async_url(db_url), poolclass=NullPool)
        try:
            async with AsyncSession(endpoint_engine) as db:
                dropped = ajobs.graph()
                dropped.add(number, value=1)
                await dropped.enqueue_async(db)
                await db.rollback()
                g = ajobs.graph()
                first = g.add(number, value=2)
                g.add(number, depends_on=first, result_as="value")
                graph_id = await g.enqueue_async(db)
                await db.commit()
            return graph_id
        finally:
            await endpoint_engine.dispose()

    graph_id = asyncio.run(request())
    assert [j.args for j in ajobs.list_jobs()] == [{}, {"value": 2}]
    with ajobs.worker(concurrency=1, poll_interval=0.05):
        eventually(lambda: ajobs.get_graph(graph_id).state == "completed")
    assert ajobs.get_graph(graph_id).jobs[-1].result == 2
