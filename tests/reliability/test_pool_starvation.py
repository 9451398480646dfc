"""Pool starvation: 10,000 pending jobs against ``pool_size=5, max_overflow=0`` never time out
waiting for a connection (the claimer takes only as many jobs as there are free executor
slots), and a concurrency the pool cannot serve is refused at start with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import eventually
from tests.reliability.harness import (
    APP,
    ROOT,
    Workers,
    env_int,
    finished,
    read_samples,
    record,
    tally,
    wait_registered,
)

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900)]

JOBS = env_int("SQLJOBS_STARVATION_JOBS", 1000, full=10_000)
SMALL_POOL = {
    "SQLJOBS_REL_POOL_SIZE": "5",
    "SQLJOBS_REL_MAX_OVERFLOW": "0",
    # Starvation would show within seconds as "QueuePool limit of size 5 overflow 0 reached".
    "SQLJOBS_REL_POOL_TIMEOUT": "3",
}


def test_a_backlog_far_larger_than_a_five_connection_pool_completes_without_starving(
    dialect: str, rel_app: Any, workers: Workers, tmp_path: Path
) -> None:
    samples = tmp_path / "samples.jsonl"
    half = JOBS // 2
    rel_app.jobs.enqueue_many(
        None,
        [rel_app.apply.prepare(key=i) for i in range(half)]
        + [rel_app.noop.prepare(key=i) for i in range(JOBS - half)],
    )
    # 2 job sessions + claimer, completer and heartbeat = 5: the most this pool allows.
    worker = workers.start(
        "--concurrency",
        "2",
        "--poll-interval",
        "0.05",
        "--log-level",
        "WARNING",
        env={
            **SMALL_POOL,
            "SQLJOBS_REL_SAMPLES": str(samples),
            "SQLJOBS_REL_SAMPLE_EVERY": "0.2",
        },
    )
    wait_registered(rel_app, worker)
    started = time.monotonic()
    eventually(lambda: finished(rel_app), timeout=840, interval=0.5)
    elapsed = time.monotonic() - started
    workers.stop_all([worker])

    output = worker.output()
    timeouts = output.count("QueuePool limit") + output.count("TimeoutError")
    peak = max((s["checked_out"] for s in read_samples(samples)), default=None)
    result = tally(rel_app, half)
    record(
        "pool-starvation",
        dialect,
        jobs=JOBS,
        pool="pool_size=5, max_overflow=0, concurrency=2",
        peak_checked_out=peak,
        pool_timeouts=timeouts,
        jobs_per_second=round(JOBS / elapsed, 1),
        seconds=round(elapsed, 1),
        tally=result,
    )
    assert timeouts == 0, output[-3000:]
    assert " ERROR " not in output, output[-3000:]
    assert peak is not None and peak <= 5
    assert result.completed == result.jobs == JOBS
    assert result.lost == 0 and result.duplicated == 0 and result.counter == half


@pytest.mark.dialects(
    "sqlite", "postgresql", reason="the pool check runs before any database-specific code"
)
def test_a_concurrency_the_pool_cannot_serve_is_refused_at_start(
    dialect: str, db_url: str, rel_app: Any
) -> None:
    env = {
        **os.environ,
        **SMALL_POOL,
        "SQLJOBS_TEST_DATABASE_URL": db_url,
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-m", "sqljobs", "worker", f"{APP}:jobs", "--concurrency", "3"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done
    message = done.stderr
    assert "concurrency=3 needs up to 6 connections" in message, message
    assert "pool holds at most 5" in message and "pool_size/max_overflow" in message
    assert rel_app.jobs.store.list_workers() == []  # refused before registering
