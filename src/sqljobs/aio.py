"""Helpers for async applications: matching sync and async database URLs, and a
:class:`~sqljobs.JobQueue` built from an ``async_sessionmaker`` alone.

A JobQueue keeps its own bookkeeping (claims, heartbeats, error records) on a *sync* engine,
even when every task and endpoint is async: those short transactions run on worker threads.
An async-only app therefore derives a sync URL for the same database from its async one:

- ``postgresql+asyncpg://`` and ``postgresql+psycopg_async://`` -> ``postgresql+psycopg://``
- ``sqlite+aiosqlite:///`` -> ``sqlite:///``
- ``mysql+aiomysql://`` and ``mysql+asyncmy://`` -> ``mysql+pymysql://``

Example:
    >>> sync_url("postgresql+asyncpg://app@db/app")
    'postgresql+psycopg://app@db/app'
    >>> async_url("sqlite:///app.db")
    'sqlite+aiosqlite:///app.db'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from ._urls import async_url, sync_url
from .exceptions import ConfigurationError
from .jobqueue import JobQueue

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import async_sessionmaker

__all__ = ["async_url", "job_queue", "sync_url"]


def job_queue(
    async_session_factory: async_sessionmaker[Any],
    **engine_options: Any,
) -> JobQueue:
    """A :class:`~sqljobs.JobQueue` for an app that only has an ``async_sessionmaker``.

    Builds the sync engine for sqljobs' bookkeeping from :func:`sync_url` of the async
    engine's URL (``engine_options`` go to ``create_engine``); ``async def`` tasks get an
    ``AsyncSession`` from ``async_session_factory``. Sync tasks, if any, get a session from
    the derived sync engine.

    Example:
        >>> async_engine = create_async_engine("postgresql+asyncpg://app@db/app")  # doctest: +SKIP
        >>> AsyncSessionLocal = async_sessionmaker(async_engine)                  # doctest: +SKIP
        >>> jobs = sqljobs.aio.job_queue(AsyncSessionLocal)                        # doctest: +SKIP
    """
    bind = async_session_factory.kw.get("bind")
    sync_engine = getattr(bind, "sync_engine", None)
    if sync_engine is None:
        raise ConfigurationError(
            "the async_sessionmaker is not bound to an AsyncEngine: create it with "
            "async_sessionmaker(create_async_engine(url))"
        )
    engine = create_engine(sync_url(sync_engine.url), **engine_options)
    return JobQueue(sessionmaker(engine), async_session_factory=async_session_factory)
