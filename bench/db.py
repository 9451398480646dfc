"""Benchmark databases: create them, reset the counters table, read its sum."""

from __future__ import annotations

from functools import cache

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Engine, make_url

from bench.jobbody import REQUESTS
from bench.settings import COUNTER_ROWS, MARIADB_URL, OUT, PG_URL


def ensure_databases() -> None:
    """Create ``sqljobs_bench`` on PostgreSQL and MariaDB if missing (loopback only)."""
    OUT.mkdir(parents=True, exist_ok=True)
    for url in (PG_URL, MARIADB_URL):
        parsed = make_url(url)
        if parsed.host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"refusing a non-loopback database: {parsed.host}")
    pg_admin = create_engine(
        make_url(PG_URL).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with pg_admin.connect() as conn:
        name = make_url(PG_URL).database
        if not conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ).first():
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    pg_admin.dispose()
    maria_admin = create_engine(make_url(MARIADB_URL).set(database="mysql"))
    with maria_admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{make_url(MARIADB_URL).database}`"))
    maria_admin.dispose()


@cache
def engine_for(url: str) -> Engine:
    """The harness's own engine (counters, seeding): pre-ping survives killed connections."""
    return create_engine(url, pool_pre_ping=True)


@cache
def request_engine(url: str) -> Engine:
    """The engine a W4 "request" writes with, as a web app's would be (default pool, no
    pre-ping): the same for every contender."""
    return create_engine(url)


def reset_counters(url: str) -> None:
    """(Re)create ``counters`` with 10 rows at zero, and W4's empty ``bench_requests``."""
    engine = engine_for(url)
    REQUESTS.drop(engine, checkfirst=True)
    REQUESTS.create(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS counters"))
        conn.execute(text("CREATE TABLE counters (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)"))
        conn.execute(
            text("INSERT INTO counters (id, n) VALUES (:id, 0)"),
            [{"id": k} for k in range(1, COUNTER_ROWS + 1)],
        )


def zero_counters(url: str) -> None:
    with engine_for(url).begin() as conn:
        conn.execute(text("UPDATE counters SET n = 0"))


def counter_sum(url: str) -> int:
    with engine_for(url).connect() as conn:
        return int(conn.execute(text("SELECT COALESCE(SUM(n), 0) FROM counters")).scalar_one())


def request_rows(url: str, run: str) -> int:
    """How many W4 requests of ``run`` committed their own row."""
    query = select(func.count()).select_from(REQUESTS).where(REQUESTS.c.run == run)
    with engine_for(url).connect() as conn:
        return int(conn.execute(query).scalar_one())


def server_work(url: str) -> int | None:
    """A server-side counter of the work done so far: PostgreSQL's committed + rolled back
    transactions in this database, MariaDB's statements (``Questions``); None elsewhere."""
    dialect = make_url(url).get_backend_name()
    with engine_for(url).connect() as conn:
        if dialect == "postgresql":
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            query = (
                "SELECT xact_commit + xact_rollback FROM pg_stat_database"
                " WHERE datname = current_database()"
            )
            return int(conn.execute(text(query)).scalar_one())
        if dialect in ("mysql", "mariadb"):
            row = conn.execute(text("SHOW GLOBAL STATUS LIKE 'Questions'")).one()
            return int(row[1])
    return None
