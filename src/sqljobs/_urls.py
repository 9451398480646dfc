"""Matching sync and async database URLs (re-exported by :mod:`sqljobs.aio`)."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url

from .exceptions import ConfigurationError

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
