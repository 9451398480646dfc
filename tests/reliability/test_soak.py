"""Soak: many jobs through 2 worker processes while each samples its own threads,
checked-out connections, RSS and open file descriptors. All stay flat.

CI runs a short soak; SQLJOBS_SOAK_JOBS=50000 is the full one in docs/reliability.md."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import eventually
from tests.reliability.harness import (
    Workers,
    env_int,
    finished,
    read_samples,
    record,
    tally,
    wait_registered,
)

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(3600)]

JOBS = env_int("SQLJOBS_SOAK_JOBS", 2000, full=50_000)
CONCURRENCY = 4
#: RSS may grow a little while caches warm up; a leak per job grows without bound.
RSS_GROWTH_LIMIT_MB = 20.0


def curve(samples: list[dict[str, Any]], points: int = 10) -> list[dict[str, Any]]:
    """``points`` evenly spaced samples, time relative to the first: the reported curve."""
    if not samples:
        return []
    step = max(1, len(samples) // points)
    start = samples[0]["t"]
    picked = [*samples[::step][:points], samples[-1]]
    return [{**s, "t": round(s["t"] - start, 1)} for s in picked]


def test_soak_resources_stay_flat(
    dialect: str, rel_app: Any, workers: Workers, tmp_path: Path
) -> None:
    half = JOBS // 2
    rel_app.jobs.enqueue_many(
        None,
        [rel_app.apply.prepare(key=i) for i in range(half)]
        + [rel_app.noop.prepare(key=i) for i in range(JOBS - half)],
    )
    # Enough samples for a curve however fast the short soak runs.
    every = "2" if JOBS >= 20_000 else "0.1"
    files = [tmp_path / f"samples-{n}.jsonl" for n in range(2)]
    pool = [
        workers.start(
            "--concurrency",
            str(CONCURRENCY),
            "--poll-interval",
            "0.05",
            "--log-level",
            "WARNING",
            env={"SQLJOBS_REL_SAMPLES": str(path), "SQLJOBS_REL_SAMPLE_EVERY": every},
        )
        for path in files
    ]
    for worker in pool:
        wait_registered(rel_app, worker)
    # Both workers registered; their threads start right after that.
    steady_from = time.time() + 0.5
    started = time.monotonic()
    eventually(lambda: finished(rel_app), timeout=3500, interval=1)
    elapsed = time.monotonic() - started
    # The steady state while the workers idle afterwards counts too (nothing piles up):
    # wait for each worker to take ten samples after the last job finished.
    done_at = time.time()
    for path in files:
        eventually(
            lambda path=path: sum(s["t"] > done_at for s in read_samples(path)) >= 10,  # type: ignore[misc]
            timeout=60,
            interval=0.1,
        )
    stopping_at = time.time()  # samples taken while shutting down are not steady state
    workers.stop_all(pool)

    result = tally(rel_app, half)
    figures: dict[str, Any] = {}
    for index, path in enumerate(files):
        samples = [s for s in read_samples(path) if s["t"] < stopping_at]
        after_start = [s for s in samples if s["t"] >= steady_from]
        # The first fifth is warm-up: on a loaded machine the pool may still be opening its
        # connections (each adds the database's and the WAL's descriptors on SQLite).
        steady = after_start[len(after_start) // 5 :]
        assert len(steady) >= 8, f"too few samples ({len(steady)}): run a bigger soak"
        tenth = max(1, len(steady) // 10)
        rss_start = statistics.mean(s["rss_mb"] for s in steady[:tenth])
        rss_end = statistics.mean(s["rss_mb"] for s in steady[-tenth:])
        figures[f"worker{index}"] = {
            "threads": sorted({s["threads"] for s in steady}),
            "peak_checked_out": max(s["checked_out"] for s in samples),
            "fds_first_last": [steady[0]["fds"], steady[-1]["fds"], max(s["fds"] for s in steady)],
            "fds_while_idle": sorted({s["fds"] for s in samples if s["t"] > done_at}),
            "rss_mb_start_end_peak": [
                round(rss_start, 1),
                round(rss_end, 1),
                max(s["rss_mb"] for s in steady),
            ],
            "curve": curve(samples),
        }
    record(
        "soak",
        dialect,
        jobs=JOBS,
        seconds=round(elapsed, 1),
        jobs_per_second=round(JOBS / elapsed, 1),
        tally=result,
        **figures,
    )
    assert result.completed == result.jobs == JOBS
    assert result.lost == 0 and result.duplicated == 0 and result.counter == half
    for name, figure in figures.items():
        assert len(figure["threads"]) == 1, (name, figure["threads"])
        assert figure["peak_checked_out"] <= CONCURRENCY + 3, (name, figure)
        # Descriptors follow the pool (a SQLite connection holds two: the database and its
        # WAL), which may grow to its peak under load: bounded by one pool's worth, and flat
        # once the worker idles (nothing accumulates).
        first, _, peak = figure["fds_first_last"]
        assert peak <= first + 2 * (CONCURRENCY + 3), (name, figure["fds_first_last"])
        assert len(figure["fds_while_idle"]) == 1, (name, figure["fds_while_idle"])
        rss_start, rss_end, _ = figure["rss_mb_start_end_peak"]
        assert rss_end - rss_start < RSS_GROWTH_LIMIT_MB, (name, figure["rss_mb_start_end_peak"])
