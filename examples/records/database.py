"""Engines, sessions and the job queue, all in the app's one database.

``DATABASE_URL`` picks the database (default: ``sqlite:///records.db``), e.g.
``postgresql+psycopg://app@localhost/app`` or ``mysql+pymysql://app@localhost/app``. The
async engine for ``async def`` endpoints and tasks is derived from it (asyncpg, aiosqlite or
aiomysql).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

import sqljobs
from sqljobs.aio import async_url

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite:///records.db")

# Room for the in-process worker (concurrency + 2 connections) and for request threads.
_POOL = {"pool_size": 10, "max_overflow": 20}

engine = create_engine(DATABASE_URL, **_POOL)
SessionLocal = sessionmaker(engine)

async_engine = create_async_engine(async_url(DATABASE_URL), **_POOL)
AsyncSessionLocal = async_sessionmaker(async_engine, expire_on_commit=False)

# One queue for sync and async tasks; its table lives in the same database as the records.
jobs = sqljobs.JobQueue(SessionLocal, async_session_factory=AsyncSessionLocal)


def get_db() -> Iterator[Session]:
    """The classic FastAPI dependency: one session per request, closed afterwards."""
    with SessionLocal() as db:
        yield db


async def get_async_db() -> AsyncIterator[AsyncSession]:
    async with AsyncSessionLocal() as db:
        yield db
