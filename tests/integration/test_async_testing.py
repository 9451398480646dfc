"""Issue 18, items 2 and 3 (async): ``await jobs.adrain()`` and the async testing helpers in an
``async def`` test, on each async driver (PostgreSQL: asyncpg and psycopg), with the app's
pooled async engine: async tasks run on the test's loop, no connection opened on another
loop ever reaches the app's pool, and the rollback-per-test pattern sees its jobs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import Engine, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import JobQueue, JobState, SchemaNotReady, testing
from sqljobs.aio import async_url, job_queue, sync_url
from sqljobs.registry import Task
from sqljobs.schema import jobs_table
from tests.conftest import Counter
from tests.helpers import (
    add_counters,
    async_rolled_back_transaction,
    counter_total,
    increment,
    sqlite_savepoints,
)

POOL_SIZE = 2


@pytest_asyncio.fixture
async def app_engine(db_url: str, async_driver: str, engine: Engine) -> AsyncIterator[AsyncEngine]:
    """The app's async engine: pooled, used by the test on its own loop."""
    async_engine = _create_async_engine(
        async_url(db_url, driver=async_driver), pool_size=POOL_SIZE, max_overflow=0
    )
    yield async_engine
    await async_engine.dispose()


@pytest_asyncio.fixture
async def test_engine(db_url: str, async_driver: str, engine: Engine) -> AsyncIterator[AsyncEngine]:
    """The async engine of the test's rolled-back transaction (SQLite: with real savepoints)."""
    async_engine = _create_async_engine(async_url(db_url, driver=async_driver))
    sqlite_savepoints(async_engine.sync_engine)
    yield async_engine
    await async_engine.dispose()


@pytest.fixture
def ajobs(session_factory: sessionmaker[Session], app_engine: AsyncEngine) -> Iterator[JobQueue]:
    queue = JobQueue(
        session_factory,
        async_session_factory=async_sessionmaker(app_engine, expire_on_commit=False),
    )
    queue.create_schema()
    yield queue
    queue.close()


async def every_pooled_connection_answers(app_engine: AsyncEngine) -> list[int]:
    """Check out the whole pool at once, on this loop, and query on each connection: a
    connection opened on another loop fails here ("attached to a different loop")."""

    async def read() -> int:
        async with app_engine.connect() as conn:
            return int((await conn.execute(select(Counter.n).where(Counter.id == 1))).scalar_one())

    return list(await asyncio.gather(*(read() for _ in range(POOL_SIZE))))


def loop_recording_task(queue: JobQueue, loops: list[int]) -> Task[..., Any]:
    @queue.task(name="bump")
    async def bump(session: AsyncSession) -> None:
        loops.append(id(asyncio.get_running_loop()))
        await session.execute(update(Counter).where(Counter.id == 1).values(n=Counter.n + 1))

    return bump


@pytest.mark.asyncio
async def test_adrain_runs_async_tasks_on_the_callers_loop_with_the_apps_pooled_engine(
    ajobs: JobQueue, app_engine: AsyncEngine, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory)
    loops: list[int] = []
    bump = loop_recording_task(ajobs, loops)
    ids = [bump.enqueue(), bump.enqueue()]
    result = await ajobs.adrain()
    assert result.completed == ids
    assert loops == [id(asyncio.get_running_loop())] * 2
    assert await every_pooled_connection_answers(app_engine) == [2] * POOL_SIZE


@pytest.mark.asyncio
async def test_a_sync_drain_in_an_async_test_puts_no_foreign_connection_in_the_apps_pool(
    ajobs: JobQueue, app_engine: AsyncEngine, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory)
    loops: list[int] = []
    bump = loop_recording_task(ajobs, loops)
    assert await every_pooled_connection_answers(app_engine) == [0] * POOL_SIZE  # pool warmed
    job_id = bump.enqueue()
    assert ajobs.drain().completed == [job_id]  # blocks this loop: runs on sqljobs' own loop
    assert loops != [id(asyncio.get_running_loop())]
    assert await every_pooled_connection_answers(app_engine) == [1] * POOL_SIZE


@pytest.mark.asyncio
async def test_inline_from_an_async_endpoint_runs_the_job_on_its_loop_leaving_the_pool_sound(
    ajobs: JobQueue, app_engine: AsyncEngine, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory)
    loops: list[int] = []
    bump = loop_recording_task(ajobs, loops)
    with testing.inline(ajobs):
        async with AsyncSession(app_engine) as db:  # the endpoint's session, from the app's pool
            job_id = await bump.enqueue_async(db)
            await db.commit()  # runs the job here, before commit() returns
    job = ajobs.get(job_id)
    assert (job.state, job.attempt, job.errors) == (JobState.COMPLETED, 1, ())
    assert loops == [id(asyncio.get_running_loop())]
    assert await every_pooled_connection_answers(app_engine) == [1] * POOL_SIZE


def job_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(jobs_table)).scalar_one())


@pytest.mark.asyncio
async def test_async_helpers_and_adrain_work_in_the_tests_rolled_back_transaction(
    ajobs: JobQueue, test_engine: AsyncEngine, engine: Engine
) -> None:
    loops: list[int] = []
    bump = loop_recording_task(ajobs, loops)

    @ajobs.task(name="sync_bump")
    def sync_bump(session: Session) -> None:
        increment(session)

    async with async_rolled_back_transaction(test_engine) as db:
        db.add(Counter(id=1, n=0))
        await db.commit()  # releases a savepoint of the test's transaction
        first = await bump.enqueue_async(db)
        second = await sync_bump.enqueue_async(db)
        await db.commit()
        assert testing.enqueued(ajobs) == []  # outside the test's transaction: not there
        assert [j.id for j in await testing.aenqueued(ajobs, using=db)] == [first, second]
        assert (await testing.aassert_enqueued(ajobs, sync_bump, using=db)).id == second
        assert (await ajobs.adrain(using=db)).completed == [first, second]
        await testing.arefute_enqueued(ajobs, bump, using=db)
        assert (await db.execute(select(Counter.n))).scalar_one() == 2
    assert loops == [id(asyncio.get_running_loop())]
    assert job_rows(engine) == 0
    with engine.connect() as conn:
        assert conn.execute(select(Counter.n)).all() == []


@pytest.mark.asyncio
async def test_inline_runs_an_async_sessions_jobs_in_the_tests_transaction(
    ajobs: JobQueue, test_engine: AsyncEngine, engine: Engine
) -> None:
    loops: list[int] = []
    bump = loop_recording_task(ajobs, loops)
    async with async_rolled_back_transaction(test_engine) as db:
        with testing.inline(ajobs, db):
            db.add(Counter(id=1, n=0))
            job_id = await bump.enqueue_async(db)
            await db.commit()
        job = await testing.aassert_enqueued(ajobs, bump, states=["completed"], using=db)
        assert (job.id, job.attempt, job.errors) == (job_id, 1, ())
        assert (await db.execute(select(Counter.n))).scalar_one() == 1
    assert loops == [id(asyncio.get_running_loop())]
    assert job_rows(engine) == 0


@pytest.mark.asyncio
async def test_rebind_to_an_async_sessionmaker_alone_moves_the_queue_and_its_async_tasks(
    app_engine: AsyncEngine, session_factory: sessionmaker[Session], db_url: str, tmp_path: Path
) -> None:
    import_time = _create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    jobs = job_queue(async_sessionmaker(import_time))  # the app's queue, built at import
    loops: list[int] = []
    bump = loop_recording_task(jobs, loops)
    add_counters(session_factory)
    try:
        with jobs.rebind(async_sessionmaker(app_engine)):
            assert jobs.engine.url.render_as_string(hide_password=False) == sync_url(db_url)
            jobs.create_schema()
            job_id = bump.enqueue()
            assert (await jobs.adrain()).completed == [job_id]
            assert jobs.get(job_id).state is JobState.COMPLETED
        with pytest.raises(SchemaNotReady, match=r"app\.db"):
            jobs.get(job_id)  # back on the app's database
    finally:
        jobs.close()
        jobs.engine.dispose()
        await import_time.dispose()
    assert counter_total(session_factory) == 1


@pytest.mark.asyncio
async def test_missing_tables_seen_through_the_tests_async_session_name_its_database(
    ajobs: JobQueue, test_engine: AsyncEngine
) -> None:
    ajobs.drop_schema()
    async with async_rolled_back_transaction(test_engine) as db:
        with pytest.raises(SchemaNotReady) as missing:
            await testing.aenqueued(ajobs, using=db)
    where = test_engine.url.render_as_string(hide_password=True)
    assert f"the sqljobs tables are missing in {where}" in str(missing.value)
