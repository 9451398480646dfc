"""Per-key limits across real worker processes: the jobs themselves check the rule."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sqljobs import JobQueue, JobState
from tests.helpers import app_module, eventually
from tests.processes import WorkerProcesses


@pytest.fixture
def app(db_url: str, engine: Any) -> Iterator[Any]:
    with app_module("tests.acceptance.keys_app", db_url) as module:
        module.jobs.create_schema()
        module.starts.drop(module.engine, checkfirst=True)
        module.starts.create(module.engine)
        yield module


@pytest.fixture
def workers(db_url: str, tmp_path: Path) -> Iterator[WorkerProcesses]:
    with WorkerProcesses(
        db_url,
        tmp_path,
        "--log-level",
        "WARNING",
        "--poll-interval",
        "0.05",
        app="tests.acceptance.keys_app:jobs",
    ) as started:
        yield started


def started(app: Any) -> list[Any]:
    with app.engine.connect() as conn:
        return list(conn.execute(select(app.starts).order_by(app.starts.c.id)))


@pytest.mark.needs("concurrent_writers")
def test_200_jobs_over_5_keys_with_limit_1_never_run_two_of_a_key_in_4_processes(
    app: Any, workers: WorkerProcesses
) -> None:
    jobs: JobQueue = app.jobs
    new = [app.per_user.prepare(user=f"u{k}", n=i) for i in range(40) for k in range(5)]
    ids = jobs.enqueue_many(None, new)
    for _ in range(4):
        workers.start("--concurrency", "4")
    eventually(
        lambda: len(jobs.list_jobs(state="completed", limit=1000)) == len(ids),
        timeout=240,
        interval=0.2,
    )
    workers.stop_all()
    rows = started(app)
    assert len(rows) == 200
    assert sorted({row.running for row in rows}) == [1], "two jobs of one key ran at once"


@pytest.mark.needs("concurrent_writers")
def test_fifo_keeps_each_keys_order_across_4_processes(app: Any, workers: WorkerProcesses) -> None:
    jobs: JobQueue = app.jobs
    ids = jobs.enqueue_many(
        None, [app.ordered.prepare(order=f"o{k}", n=i) for i in range(30) for k in range(5)]
    )
    for _ in range(4):
        workers.start("--concurrency", "3")
    eventually(
        lambda: len(jobs.list_jobs(state="completed", limit=1000)) == len(ids),
        timeout=240,
        interval=0.2,
    )
    workers.stop_all()
    rows = started(app)
    by_key: dict[str, list[int]] = {}
    for row in rows:
        by_key.setdefault(row.key, []).append(row.n)
    assert by_key == {f"o{k}": list(range(30)) for k in range(5)}
    assert {row.running for row in rows} == {1}


def test_a_key_held_by_a_killed_worker_frees_once_its_job_is_rescued(
    app: Any, workers: WorkerProcesses
) -> None:
    jobs: JobQueue = app.jobs
    first = app.stuck_first.enqueue(user="u", n=0)
    second = app.stuck_first.enqueue(user="u", n=1)
    victim = workers.start("--concurrency", "2", "--lease", "1")
    eventually(lambda: [row.job for row in started(app)] == [first], timeout=60)
    victim.sigkill()
    survivor = workers.start("--concurrency", "2", "--lease", "1")
    eventually(
        lambda: {jobs.get(first).state, jobs.get(second).state} == {JobState.COMPLETED},
        timeout=90,
        interval=0.2,
    )
    workers.stop_all([survivor])
    rows = started(app)
    # The second job started only after the first left `running` (rescued), never beside it.
    assert [row.running for row in rows] == [1, 1, 1]
    assert sorted((row.job, row.attempt) for row in rows) == [(first, 1), (first, 2), (second, 1)]
    assert jobs.get(first).errors[0].type == "LeaseExpired"
