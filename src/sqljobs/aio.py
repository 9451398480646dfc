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
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import sessionmaker

from .exceptions import ConfigurationError
from .jobqueue import JobQueue

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import async_sessionmaker

__all__ = ["async_url", "job_queue", "sync_url"]

_SYNC_DRIVERS = {
    ("postgresql", "asyncpg"): "psycopg",
    ("postgresql", "psycopg_async"): "psycopg",
    ("postgresql", "psycopg"): "psycopg",  # the psycopg dialect is both sync and async
    ("sqlite", "aiosqlite"): "pysqlite",
    ("mysql", "aiomysql"): "pymysql",
    ("mysql", "asyncmy"): "pymysql",
    ("mariadb", "aiomysql"): "pymysql",
    ("mariadb", "asyncmy"): "pymysql",
}
_ASYNC_DRIVERS = {
    "postgresql": "asyncpg",
    "sqlite": "aiosqlite",
    "mysql": "aiomysql",
    "mariadb": "aiomysql",
}


def _backend_and_driver(url: URL) -> tuple[str, str]:
    backend = url.get_backend_name()
    driver = url.get_driver_name() if "+" in url.drivername else ""
    return backend, driver


def sync_url(url: str | URL) -> str:
    """The sync URL for the database an async URL points to (password kept).

    Raises:
        ConfigurationError: for a dialect or driver sqljobs does not know.
    """
    parsed = make_url(url)
    backend, driver = _backend_and_driver(parsed)
    if driver == "" or (backend, driver) not in _SYNC_DRIVERS:
        if driver in ("", "psycopg", "psycopg2", "pysqlite", "pymysql", "mysqldb"):
            return parsed.render_as_string(hide_password=False)  # already sync
        raise ConfigurationError(
            f"no known sync driver for {parsed.drivername!r}: build the JobQueue's "
            "sessionmaker yourself, e.g. sessionmaker(create_engine(<sync url>))"
        )
    sync_driver = _SYNC_DRIVERS[(backend, driver)]
    drivername = backend if sync_driver == "pysqlite" else f"{backend}+{sync_driver}"
    return parsed.set(drivername=drivername).render_as_string(hide_password=False)


def async_url(url: str | URL, *, driver: str | None = None) -> str:
    """The async URL for the database a sync URL points to (password kept).

    ``driver`` picks the async driver (default: asyncpg, aiosqlite or aiomysql), e.g.
    ``driver="psycopg_async"`` for psycopg 3's own async mode.
    """
    parsed = make_url(url)
    backend, current = _backend_and_driver(parsed)
    if driver is None and current in ("asyncpg", "psycopg_async", "aiosqlite", "aiomysql"):
        return parsed.render_as_string(hide_password=False)  # already async
    chosen = driver or _ASYNC_DRIVERS.get(backend)
    if chosen is None:
        raise ConfigurationError(f"sqljobs supports SQLite, PostgreSQL and MariaDB, not {backend}")
    return parsed.set(drivername=f"{backend}+{chosen}").render_as_string(hide_password=False)


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
