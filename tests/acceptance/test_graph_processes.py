"""Job graphs with real ``sqljobs worker`` processes: parents finishing at the same moment on
different workers release their fan-in exactly once, never twice, never stuck."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sqljobs import JobQueue, JobState
from tests.conftest import Counter
from tests.helpers import add_counters, app_module, eventually
from tests.processes import WorkerProcesses

PARTS = 1000
PAIRS = 100


@pytest.fixture
def app(db_url: str, engine: Any) -> Iterator[Any]:
    with app_module("tests.acceptance.graph_app", db_url) as module:
        module.jobs.create_schema()
        add_counters(module.SessionLocal, 10)
        yield module


@pytest.fixture
def workers(db_url: str, tmp_path: Path) -> Iterator[WorkerProcesses]:
    with WorkerProcesses(
        db_url, tmp_path, "--log-level", "WARNING", app="tests.acceptance.graph_app:jobs"
    ) as started:
        yield started


def counters(app: Any) -> dict[int, int]:
    with app.SessionLocal() as session:
        return {c.id: c.n for c in session.scalars(select(Counter))}


def all_finished(jobs: JobQueue) -> bool:
    counts = jobs.counts()
    return bool(counts) and all(state.is_finished for (_q, state) in counts)


def test_a_fan_in_of_1000_and_100_pairs_each_run_once_after_their_last_parent(
    app: Any, workers: WorkerProcesses, dialect: str
) -> None:
    jobs: JobQueue = app.jobs
    big = jobs.graph(name="fan-in")
    parts = big.group(app.part, [{"index": i} for i in range(PARTS)])
    fan_in = big.add(app.gather, depends_on=parts, results_as="results", counter_id=app.BIG_COUNTER)
    big.enqueue()
    pairs = jobs.graph(name="pairs")
    pair_ends = []
    for i in range(PAIRS):
        both = pairs.group(app.part, [{"index": i}, {"index": i + 1}])
        pair_ends.append(
            pairs.add(
                app.gather, depends_on=both, results_as="results", counter_id=app.PAIR_COUNTER
            )
        )
    pairs.enqueue()

    # SQLite has one writer: one process; the servers get two, sharing the parents.
    processes = 1 if dialect == "sqlite" else 2
    for _ in range(processes):
        workers.start("--concurrency", "4", "--poll-interval", "0.05")
    eventually(lambda: all_finished(jobs), timeout=300, interval=0.2)
    workers.stop_all()

    assert jobs.counts() == {("default", JobState.COMPLETED): PARTS + 3 * PAIRS + 1}
    seen = counters(app)
    assert seen[app.BIG_COUNTER] == 1
    assert seen[app.PAIR_COUNTER] == PAIRS
    assert sum(seen[c] for c in range(1, 9)) == PARTS + 2 * PAIRS
    # No attempt was lost to a deadlock or a lock timeout between finishing parents.
    retried = [
        (j.id, j.attempt, [f"{e.type}: {e.message[:200]}" for e in j.errors])
        for j in jobs.list_jobs(limit=PARTS + 3 * PAIRS + 1)
        if j.attempt != 1
    ]
    assert not retried, retried
    gathered = jobs.get(fan_in.id)
    assert gathered.args["results"] == list(range(PARTS))
    assert gathered.result == sum(range(PARTS))
    assert (gathered.attempt, gathered.errors) == (1, ())
    assert [jobs.get(end.id).result for end in pair_ends] == [2 * i + 1 for i in range(PAIRS)]
    finished = [j.finished_at for j in jobs.get_graph(big.id or 0).jobs[:-1] if j.finished_at]
    assert len(finished) == PARTS
    assert gathered.started_at is not None and gathered.started_at >= max(finished)
