"""The async engine, the AsyncSession factory and the job queue, on the app's one database.

Built at import time, from ``DATABASE_URL`` (an async URL: ``sqlite+aiosqlite:///...``,
``postgresql+asyncpg://...``, ``postgresql+psycopg_async://...``, ``mysql+aiomysql://...``).
Tests point all three at a test database in their conftest (``jobs.rebind``).
"""

from __future__ import annotations

import os

from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

import sqljobs.aio

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///asyncapp.db")

engine = create_async_engine(DATABASE_URL, pool_pre_ping=True)
AsyncSessionLocal = async_sessionmaker(engine, expire_on_commit=False)
# The job tables live in the same database; sqljobs derives a sync engine for its own short
# bookkeeping transactions (claims, completions), and async tasks get an AsyncSession from
# AsyncSessionLocal.
jobs = sqljobs.aio.job_queue(AsyncSessionLocal)
