"""sqljobs.aio: matching sync/async URLs, and a JobQueue built from an async_sessionmaker
alone, running sync and async tasks on each database."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import ConfigurationError, JobState
from sqljobs.aio import async_url, job_queue, sync_url
from tests.conftest import Counter
from tests.helpers import add_counters, counter_total, eventually, increment


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql+asyncpg://u:secret@db:5432/app", "postgresql+psycopg://u:secret@db:5432/app"),
        ("postgresql+psycopg_async://u@db/app", "postgresql+psycopg://u@db/app"),
        ("postgresql+psycopg://u@db/app", "postgresql+psycopg://u@db/app"),
        ("sqlite+aiosqlite:///./app.db", "sqlite:///./app.db"),
        ("sqlite+aiosqlite:////tmp/app.db", "sqlite:////tmp/app.db"),
        ("mysql+aiomysql://root@db:3306/app", "mysql+pymysql://root@db:3306/app"),
        (
            "mysql+asyncmy://root@db/app?charset=utf8mb4",
            "mysql+pymysql://root@db/app?charset=utf8mb4",
        ),
        ("mariadb+aiomysql://root@db/app", "mariadb+pymysql://root@db/app"),
        ("sqlite:///app.db", "sqlite:///app.db"),
        ("mysql+pymysql://root@db/app", "mysql+pymysql://root@db/app"),
    ],
)
def test_sync_url(given: str, expected: str) -> None:
    assert sync_url(given) == expected


@pytest.mark.parametrize(
    ("given", "driver", "expected"),
    [
        ("postgresql+psycopg://u:secret@db/app", None, "postgresql+asyncpg://u:secret@db/app"),
        ("postgresql://u@db/app", None, "postgresql+asyncpg://u@db/app"),
        ("postgresql+psycopg://u@db/app", "psycopg_async", "postgresql+psycopg_async://u@db/app"),
        ("sqlite:///app.db", None, "sqlite+aiosqlite:///app.db"),
        ("mysql+pymysql://root@db/app", None, "mysql+aiomysql://root@db/app"),
        ("mysql+aiomysql://root@db/app", None, "mysql+aiomysql://root@db/app"),
    ],
)
def test_async_url(given: str, driver: str | None, expected: str) -> None:
    assert async_url(given, driver=driver) == expected


def test_unknown_drivers_and_dialects_are_refused_clearly() -> None:
    with pytest.raises(ConfigurationError, match="no known sync driver"):
        sync_url("postgresql+someasync://u@db/app")
    with pytest.raises(ConfigurationError, match="supports SQLite, PostgreSQL and MariaDB"):
        async_url("oracle://u@db/app")


def test_job_queue_needs_an_async_sessionmaker_bound_to_an_engine() -> None:
    with pytest.raises(ConfigurationError, match="not bound to an AsyncEngine"):
        job_queue(async_sessionmaker())


def test_a_queue_built_from_an_async_sessionmaker_runs_sync_and_async_tasks(
    db_url: str, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory, 2)
    async_engine = create_async_engine(async_url(db_url))
    jobs = job_queue(async_sessionmaker(async_engine), pool_size=8)
    assert jobs.engine.url.render_as_string(hide_password=False) == sync_url(async_url(db_url))
    jobs.create_schema()

    @jobs.task
    async def async_bump(session: AsyncSession) -> None:
        await session.execute(update(Counter).where(Counter.id == 1).values(n=Counter.n + 1))

    @jobs.task
    def sync_bump(session: Session) -> None:
        increment(session, 2)

    async def request() -> list[int]:
        endpoint_engine = create_async_engine(async_url(db_url))
        try:
            async with AsyncSession(endpoint_engine) as db:
                ids = [await async_bump.enqueue_async(db), await sync_bump.enqueue_async(db)]
                await db.commit()
                return ids
        finally:
            await endpoint_engine.dispose()

    ids = asyncio.run(request())
    try:
        with jobs.worker(concurrency=2, poll_interval=0.05):
            eventually(lambda: all(jobs.get(i).state is JobState.COMPLETED for i in ids))
        assert counter_total(session_factory) == 2
    finally:
        jobs.close()  # disposes the async engine on the loop its connections belong to
        jobs.engine.dispose()
