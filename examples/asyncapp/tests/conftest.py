"""The usual async test set-up, with sqljobs' fixtures:

- the app's engine swapped for a test database's (``TEST_DATABASE_URL``): the queue follows
  with ``jobs.rebind``, so enqueues, ``drain`` and the helpers all use the test database;
- one outer transaction per test, rolled back afterwards (the rollback-per-test pattern): the
  app's ``get_db`` is overridden to give an AsyncSession that joins it (its ``commit()``
  releases a savepoint), and ``sqljobs_using`` tells sqljobs' fixtures to read and run jobs in
  it too;
- an httpx client on the app (``ASGITransport`` runs no lifespan, so no worker: tests run the
  jobs with ``jobs_inline`` or ``await jobs_adrain()``).

Everything async shares one event loop for the session, as the app's pooled engine needs.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

import sqljobs
from examples.asyncapp.app.db import jobs
from examples.asyncapp.app.main import app, get_db
from examples.asyncapp.app.models import Base

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "sqlite+aiosqlite:///asyncapp-test.db")


def real_sqlite_savepoints(engine: AsyncEngine) -> None:
    """SQLite only: SQLAlchemy's recipe that makes the driver's transactions and SAVEPOINTs
    real, without which a rollback-per-test fixture cannot work on SQLite."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine.sync_engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def test_engine() -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(TEST_DATABASE_URL)  # pooled, as in the app
    real_sqlite_savepoints(engine)
    with jobs.rebind(async_sessionmaker(engine, expire_on_commit=False)):
        # jobs.engine is now the sync engine sqljobs derived for the test database.
        sqljobs.metadata.drop_all(jobs.engine)
        Base.metadata.drop_all(jobs.engine)
        Base.metadata.create_all(jobs.engine)
        jobs.create_schema()
        yield engine
    jobs.close()
    await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def db_session(test_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """The test's transaction, rolled back after it; the app's requests use this session."""
    async with test_engine.connect() as connection:
        outer = await connection.begin()
        session = AsyncSession(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            await session.close()
            await outer.rollback()


@pytest.fixture
def sqljobs_queue() -> sqljobs.JobQueue:
    return jobs


@pytest.fixture
def sqljobs_using(db_session: AsyncSession) -> AsyncSession:
    return db_session


@pytest_asyncio.fixture(loop_scope="session")
async def client(db_session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    async def test_db() -> AsyncIterator[AsyncSession]:
        yield db_session

    app.dependency_overrides[get_db] = test_db
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c
    finally:
        app.dependency_overrides.pop(get_db, None)
