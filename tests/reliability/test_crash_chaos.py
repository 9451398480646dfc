"""Crash chaos: 4 worker processes, a driver that SIGKILLs a random one 20 times during the
run and restarts it. Every job completes, exactly once."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import eventually
from tests.reliability.harness import (
    Workers,
    completed_count,
    env_int,
    finished,
    load_app,
    record,
    registered,
    tally,
    wait_completed,
    wait_registered,
)

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900)]

JOBS = env_int("SQLJOBS_CHAOS_JOBS", 400, full=2000)
KILLS = env_int("SQLJOBS_CHAOS_KILLS", 6, full=20)
PROCESSES = 4
WORKER_ARGS = (
    "--concurrency",
    "4",
    "--lease",
    "2",
    "--poll-interval",
    "0.05",
    "--grace",
    "5",
    "--log-level",
    "WARNING",
)


def test_sigkill_chaos_every_job_completes_exactly_once(
    dialect: str, rel_app: Any, workers: Workers
) -> None:
    run_chaos(dialect, rel_app, workers, "crash-chaos")


@pytest.fixture
def bounced(
    pgbouncer_url: str, engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, Workers]]:
    """The reliability app and its worker processes, all through PgBouncer."""
    monkeypatch.setenv("SQLJOBS_REL_POOLER", "transaction")
    monkeypatch.setenv("SQLJOBS_TEST_DATABASE_URL", pgbouncer_url)
    module = load_app(pgbouncer_url)
    started = Workers(pgbouncer_url, tmp_path)
    yield module, started
    started.close()
    module.jobs.close()
    module.engine.dispose()


@pytest.mark.dialects("postgresql", reason="PgBouncer is a PostgreSQL pooler")
def test_sigkill_chaos_through_pgbouncer_every_job_completes_exactly_once(
    dialect: str, bounced: tuple[Any, Workers]
) -> None:
    """The same chaos with every connection (app, workers, checks) through PgBouncer in
    transaction pooling mode."""
    rel_app, workers = bounced
    run_chaos(dialect, rel_app, workers, "crash-chaos-pgbouncer")


def run_chaos(dialect: str, rel_app: Any, workers: Workers, name: str) -> None:
    rng = random.Random(20_000 + JOBS)
    # A short hold keeps jobs in flight, so most kills land mid-transaction.
    # SQLite runs one writer at a time, so its jobs hold less to last about as long.
    hold = 0.002 if dialect == "sqlite" else 0.02
    rel_app.jobs.enqueue_many(None, [rel_app.apply.prepare(key=i, hold=hold) for i in range(JOBS)])
    started = time.monotonic()
    pool = [workers.start(*WORKER_ARGS) for _ in range(PROCESSES)]
    kills = 0
    for round_ in range(1, KILLS + 1):
        # Spread the kills over the run: wait until the next slice of jobs is done.
        goal = JOBS * round_ // (KILLS + 2)
        wait_completed(rel_app, goal)
        # Kill a worker that is up and working (a restarted one may still be importing).
        up = eventually(
            lambda: [i for i, w in enumerate(pool) if registered(rel_app, w)], timeout=60
        )
        victim = rng.choice(up)
        done = completed_count(rel_app)
        print(f"kill {round_} at {time.monotonic() - started:.1f}s: {done} done")
        pool[victim].sigkill()
        kills += 1
        pool[victim] = workers.start(*WORKER_ARGS)
    assert completed_count(rel_app) < JOBS, "the run ended before the last kill"
    eventually(lambda: finished(rel_app), timeout=300, interval=0.2)
    for worker in pool:
        wait_registered(rel_app, worker)
    elapsed = time.monotonic() - started
    workers.stop_all(pool)

    result = tally(rel_app, JOBS)
    record(name, dialect, kills=kills, seconds=round(elapsed, 1), tally=result)
    assert result.completed == result.jobs == JOBS
    assert result.running == 0 and result.not_finished == 0
    assert result.lost == 0 and result.duplicated == 0
    assert result.counter == JOBS
    assert "CRITICAL" not in workers.logs()  # no claimer crashed
