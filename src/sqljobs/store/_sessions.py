"""A job session's connection as its database knows it, and how to end its work from another
thread: PostgreSQL ``pg_terminate_backend``, MariaDB/MySQL ``KILL CONNECTION``, SQLite
``interrupt()`` and close. Ending a connection rolls its transaction back and releases its
locks, even while the thread that uses it is stuck in Python.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection

log = logging.getLogger("sqljobs.store")

#: How long ending a server connection waits for the server to have rolled it back.
END_WAIT_SECONDS = 5.0
_MYSQL_UNKNOWN_THREAD = 1094


@dataclass(frozen=True, slots=True)
class SessionConnection:
    """One job session's pooled connection, its driver connection (``raw``) and the server's
    id for it (PostgreSQL backend pid, MariaDB/MySQL connection id; None on SQLite)."""

    pooled: PoolProxiedConnection
    raw: Any
    server_id: int | None


def identify(conn: Connection) -> SessionConnection:
    """Read the connection's id from the driver, without a round trip where the driver knows
    it (psycopg, psycopg2, PyMySQL, mysqlclient); otherwise ask the server once."""
    pooled = conn.connection
    raw: Any = pooled.dbapi_connection
    name = conn.dialect.name
    if name == "sqlite":
        return SessionConnection(pooled, raw, None)
    if name == "postgresql":
        pid = getattr(getattr(raw, "info", None), "backend_pid", None)
        if not isinstance(pid, int):
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        return SessionConnection(pooled, raw, int(pid))
    thread_id = getattr(raw, "thread_id", None)
    found = thread_id() if callable(thread_id) else None
    if not isinstance(found, int):
        found = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one()
    return SessionConnection(pooled, raw, int(found))


def end(session: SessionConnection, run: Callable[[Callable[[Connection], None]], None]) -> None:
    """End ``session``'s database work: its transaction is rolled back and its locks are
    released when this returns (``run`` runs SQL on a bookkeeping connection). The pooled
    connection is detached first, so its pool slot is free for the bookkeeping connection and
    the dead connection is never handed out again; the thread that used it gets an error at
    its next statement, and closes it with :func:`discard` when its task returns."""
    _detach(session.pooled)
    server_id = session.server_id
    if server_id is None:
        # Both are safe from another thread: interrupt() stops a running statement, close()
        # rolls back and releases the write lock (later use fails: "closed database").
        session.raw.interrupt()
        session.raw.close()
        return
    run(lambda conn: _end_server_connection(conn, server_id))


def discard(session: SessionConnection) -> None:
    """Close an ended session's driver connection, in the thread that used it (closing a
    server connection under another thread's feet is not safe in every driver)."""
    try:
        session.raw.close()
    except Exception:
        log.debug("closing an ended job session's connection failed", exc_info=True)


def _detach(pooled: PoolProxiedConnection) -> None:
    try:
        pooled.detach()
    except Exception:
        log.warning("could not detach a hung job session's connection", exc_info=True)


def _end_server_connection(conn: Connection, server_id: int) -> None:
    if conn.dialect.name == "postgresql":
        if (conn.dialect.server_version_info or (0,)) >= (14,):
            # Waits until the backend has exited, so its locks are gone when this returns.
            statement = text("SELECT pg_terminate_backend(:pid, :wait_ms)")
            conn.execute(statement, {"pid": server_id, "wait_ms": int(END_WAIT_SECONDS * 1000)})
            return
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": server_id})
        gone = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
    else:
        try:
            conn.exec_driver_sql(f"KILL CONNECTION {int(server_id)}")
        except DBAPIError as exc:
            if getattr(exc.orig, "args", (None,))[0] == _MYSQL_UNKNOWN_THREAD:
                return  # gone already
            raise
        gone = text("SELECT count(*) FROM information_schema.PROCESSLIST WHERE ID = :pid")
    # The server rolls the killed connection back in its own time: wait until it is gone.
    deadline = time.monotonic() + END_WAIT_SECONDS
    while conn.execute(gone, {"pid": server_id}).scalar_one() and time.monotonic() < deadline:
        time.sleep(0.01)
