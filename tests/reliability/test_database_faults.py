"""Database faults under running workers: PostgreSQL backends terminated
(``pg_terminate_backend``), the PostgreSQL server restarted, MariaDB connections ``KILL``-ed.
The workers recover on their own; no job is lost or applied twice."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from tests import databases
from tests.helpers import eventually
from tests.reliability.harness import (
    Workers,
    completed_count,
    env_int,
    finished,
    record,
    tally,
    wait_completed,
    wait_registered,
)

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]

JOBS = env_int("SQLJOBS_FAULT_JOBS", 400, full=1000)
ROUNDS = env_int("SQLJOBS_FAULT_ROUNDS", 4, full=5)
WORKER_ARGS = (
    "--concurrency",
    "4",
    "--lease",
    "3",
    "--poll-interval",
    "0.05",
    "--grace",
    "5",
    "--log-level",
    "WARNING",
)
PG_CLUSTER = ("15", "main")


@contextmanager
def admin(kind: str) -> Iterator[Engine]:
    """An autocommit engine on the server's maintenance database (not the test's)."""
    engine = create_engine(
        databases.SERVER_URLS[kind], isolation_level="AUTOCOMMIT", pool_pre_ping=True
    )
    try:
        yield engine
    finally:
        engine.dispose()


def run_under_faults(
    dialect: str,
    scenario: str,
    app: Any,
    workers: Workers,
    fault: Callable[[], int],
    rounds: int = ROUNDS,
) -> None:
    """Run JOBS jobs through 2 workers, calling ``fault`` ``rounds`` times along the way."""
    app.jobs.enqueue_many(None, [app.apply.prepare(key=i, hold=0.01) for i in range(JOBS)])
    started = time.monotonic()
    pool = [workers.start(*WORKER_ARGS) for _ in range(2)]
    for worker in pool:
        wait_registered(app, worker)
    connections_hit = 0
    pending_at_last_fault = 0
    for round_ in range(1, rounds + 1):
        goal = JOBS * round_ // (rounds + 2)
        wait_completed(app, goal)
        pending_at_last_fault = JOBS - completed_count(app)
        app.engine.dispose()  # the test's own pooled connections are not the target
        connections_hit += fault()
    # The faults must hit a run in progress (measured before the fault: once the database is
    # back, the workers may legitimately finish the rest before we look again).
    assert pending_at_last_fault > 0, "the run ended before the last fault"
    eventually(lambda: finished(app), timeout=300, interval=0.2)
    elapsed = time.monotonic() - started
    for worker in pool:  # recovered on their own: the same processes, never restarted
        assert worker.alive(), worker.output()[-3000:]
    workers.stop_all(pool)

    result = tally(app, JOBS)
    logged_errors = workers.logs().count(" ERROR ")
    record(
        scenario,
        dialect,
        faults=rounds,
        connections_hit=connections_hit,
        worker_errors_logged=logged_errors,
        seconds=round(elapsed, 1),
        tally=result,
    )
    assert connections_hit >= rounds
    assert "CRITICAL" not in workers.logs()  # no claimer crashed
    assert result.completed == result.jobs == JOBS
    assert result.lost == 0 and result.duplicated == 0
    assert result.counter == JOBS


@pytest.mark.dialects("postgresql", reason="pg_terminate_backend; MariaDB's KILL has its own test")
def test_postgresql_backends_terminated_mid_run(
    dialect: str, db_url: str, rel_app: Any, workers: Workers
) -> None:
    database = make_url(db_url).database

    def terminate() -> int:
        with admin(dialect) as engine, engine.connect() as conn:
            return len(
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :db AND pid <> pg_backend_pid()"
                    ),
                    {"db": database},
                ).all()
            )

    run_under_faults(dialect, "pg-terminate-backend", rel_app, workers, terminate)


def _pg_accepts_connections() -> bool:
    try:
        with admin("postgresql") as engine, engine.connect() as conn:
            return bool(conn.execute(text("SELECT 1")).scalar_one() == 1)
    except Exception:
        return False


def _real_restart_allowed() -> bool:
    """The real restart stops the whole server: only in CI or when asked for."""
    asked = os.environ.get("SQLJOBS_REL_PG_RESTART", "") == "1" or databases.IN_CI
    local = make_url(databases.PG_URL).host in ("127.0.0.1", "localhost")
    return asked and local and shutil.which("pg_ctlcluster") is not None and os.geteuid() == 0


@pytest.mark.serial
@pytest.mark.dialects("postgresql", reason="restarts the PostgreSQL server of this machine")
def test_postgresql_server_restarted_mid_run(dialect: str, rel_app: Any, workers: Workers) -> None:
    """A real ``pg_ctlcluster restart`` of the whole server: in CI (``CI=true``) or with
    SQLJOBS_REL_PG_RESTART=1, as root on a machine with pg_ctlcluster; never on a shared
    server otherwise."""
    if not _real_restart_allowed():
        reason = "restarting the PostgreSQL server needs CI=true or SQLJOBS_REL_PG_RESTART=1"
        if databases.IN_CI:
            pytest.fail(f"{reason}, as root with pg_ctlcluster")
        pytest.skip(reason)

    def restart() -> int:
        try:
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", *PG_CLUSTER, "restart"],
                check=True,
                capture_output=True,
                timeout=120,
            )
        finally:
            _ensure_pg_running()
        return 1

    run_under_faults(dialect, "pg-server-restart", rel_app, workers, restart, rounds=2)


@pytest.mark.dialects("postgresql", reason="ALLOW_CONNECTIONS and pg_terminate_backend")
def test_postgresql_database_outage_mid_run(
    dialect: str, db_url: str, rel_app: Any, workers: Workers
) -> None:
    """This test's database alone taken down as a restart would: every backend terminated
    and new connections refused for three seconds (safe on a shared server)."""
    database = make_url(db_url).database

    def outage() -> int:
        with admin(dialect) as engine, engine.connect() as conn:
            conn.execute(text(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false"))
            try:
                hit = conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :db AND pid <> pg_backend_pid()"
                    ),
                    {"db": database},
                ).all()
                time.sleep(3)  # the outage itself (not synchronisation): workers find it gone
            finally:
                conn.execute(text(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true"))
        return max(len(hit), 1)

    run_under_faults(dialect, "pg-database-outage", rel_app, workers, outage, rounds=2)


def _ensure_pg_running() -> None:
    """Whatever happened, leave PostgreSQL running and accepting connections."""
    if not _pg_accepts_connections():
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", *PG_CLUSTER, "start"],
            check=False,
            capture_output=True,
            timeout=120,
        )
    eventually(_pg_accepts_connections, timeout=120, interval=0.2)


@pytest.mark.dialects("mariadb", reason="KILL; PostgreSQL's pg_terminate_backend has its own test")
def test_mariadb_connections_killed_mid_run(
    dialect: str, db_url: str, rel_app: Any, workers: Workers
) -> None:
    database = make_url(db_url).database

    def kill_all() -> int:
        hit = 0
        with admin(dialect) as engine, engine.connect() as conn:
            ids = conn.execute(
                text(
                    "SELECT id FROM information_schema.processlist "
                    "WHERE db = :db AND id <> CONNECTION_ID()"
                ),
                {"db": database},
            ).scalars()
            for connection_id in list(ids):
                try:
                    conn.execute(text(f"KILL {int(connection_id)}"))
                    hit += 1
                except Exception:  # it ended on its own meanwhile
                    pass
        return hit

    run_under_faults(dialect, "mariadb-kill", rel_app, workers, kill_all)
