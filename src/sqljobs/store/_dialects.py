"""Every difference between SQLite, PostgreSQL and MariaDB/MySQL, behind capability flags.

The store asks this module *what* the database can do; it never tests dialect names itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import String, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from ..exceptions import ConfigurationError
from ..schema import UTCDateTime

_MYSQL_DEADLOCK_CODES = {1205, 1213}  # lock wait timeout, deadlock found


@dataclass(frozen=True, slots=True)
class DialectSupport:
    """What one database can do, as far as the job store cares."""

    name: str
    #: ``SELECT ... FOR UPDATE SKIP LOCKED``: concurrent claimers never block each other.
    skip_locked: bool
    #: ``UPDATE ... RETURNING``: claim in one round trip.
    update_returning: bool
    #: One writer at a time: transactions that write must start with ``BEGIN IMMEDIATE``.
    single_writer: bool
    #: Isolation used for the store's own short transactions (None = the engine's default).
    bookkeeping_isolation: str | None
    #: Single-statement bookkeeping may run in autocommit (cheap to switch on this driver).
    autocommit_statements: bool
    #: Enqueues NOTIFY and workers LISTEN (PostgreSQL with psycopg 3): no polling delay.
    listen_notify: bool = False
    #: A per-transaction statement timeout can enforce a task's timeout inside the database.
    statement_timeout: bool = False
    #: Many rows insert as one short statement from a JSON array, not a multi-row VALUES list.
    array_insert: bool = False
    #: Range-scanning updates lock index entries before rows (InnoDB), so bookkeeping that
    #: touches many rows must lock them with SKIP LOCKED first and then update them by id.
    index_locks_before_rows: bool = False


def support_for(engine_or_conn: Engine | Connection) -> DialectSupport:
    dialect = engine_or_conn.dialect
    name = dialect.name
    if name == "postgresql":
        listen = engine_or_conn.dialect.driver == "psycopg"
        return DialectSupport(
            name, True, True, False, "READ COMMITTED", True, listen, True, array_insert=True
        )
    if name in ("mysql", "mariadb"):
        # MySQL starts transactions implicitly (no BEGIN round trip); switching autocommit on
        # and off would cost two.
        return DialectSupport(
            "mysql", True, False, False, "READ COMMITTED", False, index_locks_before_rows=True
        )
    if name == "sqlite":
        # Writes must take the lock with BEGIN IMMEDIATE, so no autocommit.
        return DialectSupport(name, False, True, True, None, False)
    raise ConfigurationError(
        f"sqljobs supports SQLite, PostgreSQL and MariaDB/MySQL; this engine is {name!r}"
    )


class db_now(FunctionElement[datetime]):
    """The database's clock as naive UTC, as :class:`~sqljobs.schema.UTCDateTime` stores it,
    optionally plus a number of seconds: ``db_now()``, ``db_now(bindparam("p_lease"))``.

    Every lease, schedule and heartbeat comparison uses it, so workers whose clocks disagree
    still agree on when a lease expires or a job is due: one clock decides, the database's.
    """

    type = UTCDateTime()
    inherit_cache = True
    name = "db_now"


def _offset(compiler: SQLCompiler, element: db_now, **kw: Any) -> str | None:
    clauses = list(element.clauses)
    return compiler.process(clauses[0], **kw) if clauses else None


@compiles(db_now, "sqlite")
def _sqlite_now(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite stores datetimes as text and compares them as text: produce the stored format
    # ('YYYY-MM-DD HH:MM:SS.ffffff'; its clock has milliseconds, so three zeros follow).
    offset = _offset(compiler, element, **kw)
    modifier = f", printf('%.6f seconds', {offset})" if offset is not None else ""
    return f"strftime('%Y-%m-%d %H:%M:%f000', 'now'{modifier})"


@compiles(db_now, "postgresql")
def _postgresql_now(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    # statement_timestamp(): one value for the whole statement (stable, so plans are not
    # affected), and not stale like now(), which stays at the transaction's start.
    now = "timezone('utc', statement_timestamp())"
    offset = _offset(compiler, element, **kw)
    return now if offset is None else f"({now} + make_interval(secs => {offset}))"


@compiles(db_now, "mysql")
@compiles(db_now, "mariadb")
def _mysql_now(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    offset = _offset(compiler, element, **kw)
    if offset is None:
        return "UTC_TIMESTAMP(6)"
    return f"TIMESTAMPADD(MICROSECOND, ROUND(({offset}) * 1000000), UTC_TIMESTAMP(6))"


class last_error_type(FunctionElement[str]):
    """The ``type`` of the last entry of a job row's ``errors`` JSON array (NULL when there is
    none): ``last_error_type(jobs.c.errors) == "TimeoutError"`` filters on the latest error."""

    type = String()
    inherit_cache = True
    name = "last_error_type"


@compiles(last_error_type, "sqlite")
def _sqlite_last_error(element: last_error_type, compiler: SQLCompiler, **kw: Any) -> str:
    errors = compiler.process(next(iter(element.clauses)), **kw)
    return f"json_extract({errors}, '$[#-1].type')"


@compiles(last_error_type, "postgresql")
def _postgresql_last_error(element: last_error_type, compiler: SQLCompiler, **kw: Any) -> str:
    # json -> -1 is the last element (NULL for an empty array or a non-array).
    errors = compiler.process(next(iter(element.clauses)), **kw)
    return f"(({errors}) -> -1 ->> 'type')"


@compiles(last_error_type, "mysql")
@compiles(last_error_type, "mariadb")
def _mysql_last_error(element: last_error_type, compiler: SQLCompiler, **kw: Any) -> str:
    # '$[last]' needs MariaDB 10.9: build the index, for the 10.6 sqljobs supports.
    errors = compiler.process(next(iter(element.clauses)), **kw)
    return (
        f"CASE WHEN JSON_TYPE({errors}) = 'ARRAY' AND JSON_LENGTH({errors}) > 0 THEN "
        f"JSON_UNQUOTE(JSON_EXTRACT({errors}, CONCAT('$[', JSON_LENGTH({errors}) - 1, "
        "'].type'))) END"
    )


def check_server(conn: Connection) -> None:
    """Fail fast on a server too old for what the store needs (e.g. no SKIP LOCKED)."""
    if conn.dialect.name not in ("mysql", "mariadb"):
        return
    check_mysql_version(str(conn.exec_driver_sql("SELECT VERSION()").scalar_one()))


def check_mysql_version(version: str) -> None:
    """Refuse MariaDB before 10.6 and MySQL before 8.0.1 (``version`` as ``VERSION()`` says)."""
    numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:3])
    is_mariadb = "mariadb" in version.lower()
    needed = (10, 6, 0) if is_mariadb else (8, 0, 1)
    if numbers < needed:
        product = "MariaDB" if is_mariadb else "MySQL"
        raise ConfigurationError(
            f"{product} {version} lacks SELECT ... FOR UPDATE SKIP LOCKED, which workers need "
            f"to claim jobs without blocking each other: upgrade to {product} "
            f"{'.'.join(map(str, needed))} or newer"
        )


def begin_write(conn: Connection) -> None:
    """On SQLite, take the write lock now (``BEGIN IMMEDIATE``) instead of at the first write.

    A deferred transaction that reads and then writes fails with "database is locked" without
    waiting when another connection wrote in between; an immediate one waits its busy timeout.
    """
    if conn.dialect.name != "sqlite":
        return
    dbapi_connection: Any = conn.connection.dbapi_connection
    if getattr(dbapi_connection, "in_transaction", False):
        return
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def is_transient(error: BaseException) -> bool:
    """Errors worth retrying the whole transaction for: deadlocks, lock waits, busy SQLite."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if not isinstance(error, OperationalError):
        return False
    orig = error.orig
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL_DEADLOCK_CODES:
        return True
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in ("40001", "40P01", "55P03"):
        return True
    message = str(orig).lower()
    return "database is locked" in message or "deadlock" in message


SQLITE_BUSY_TIMEOUT_MS = 30_000


def set_sqlite_busy_timeout(engine: Engine) -> None:
    """Make new SQLite connections wait for the write lock instead of failing at once."""
    if engine.dialect.name != "sqlite" or getattr(engine, "_sqljobs_busy_timeout", False):
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA busy_timeout")
            if cursor.fetchone()[0] < SQLITE_BUSY_TIMEOUT_MS:
                cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    engine._sqljobs_busy_timeout = True  # type: ignore[attr-defined]


def enable_sqlite_wal(engine: Engine) -> None:
    """WAL lets readers proceed while one connection writes; it persists in the file."""
    if engine.dialect.name != "sqlite" or is_memory_sqlite(engine):
        return
    with engine.connect() as conn:
        if str(conn.exec_driver_sql("PRAGMA journal_mode").scalar()).lower() != "wal":
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        conn.commit()


def sqlite_file(engine: Engine) -> Path | None:
    """The absolute path of a file SQLite database, else None."""
    if engine.dialect.name != "sqlite" or is_memory_sqlite(engine):
        return None
    database = engine.url.database or ""
    if database.startswith("file:"):
        return None  # a URI filename: SQLite resolves it itself
    return Path(database).resolve()


def is_memory_sqlite(engine: Engine) -> bool:
    database = engine.url.database
    return engine.dialect.name == "sqlite" and (
        not database or database == ":memory:" or "mode=memory" in str(engine.url)
    )


def check_worker_engine(engine: Engine) -> None:
    """Refuse engines a threaded worker cannot use correctly."""
    if is_memory_sqlite(engine):
        raise ConfigurationError(
            "an in-memory SQLite database is private to each connection, so worker threads "
            "would see no jobs. Use a file (sqlite:///app.db), or call jobs.drain() in tests "
            "to run jobs in the calling thread."
        )


def pool_capacity(engine: Engine) -> int | None:
    """How many connections the engine's pool can hand out at once (None: unbounded)."""
    pool: Any = engine.pool
    size = getattr(pool, "size", None)
    overflow = getattr(pool, "_max_overflow", None)
    if not callable(size) or overflow is None:
        return None
    if overflow < 0:
        return None
    return int(size()) + int(overflow)
