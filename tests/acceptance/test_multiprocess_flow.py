"""Cron slots and global limits with several real worker processes."""

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
    with app_module("tests.acceptance.flow_app", db_url) as module:
        module.jobs.create_schema()
        module.runs.drop(module.engine, checkfirst=True)
        module.runs.create(module.engine)
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
        app="tests.acceptance.flow_app:jobs",
    ) as started:
        yield started


def test_each_cron_slot_runs_once_with_three_worker_processes(
    app: Any, workers: WorkerProcesses
) -> None:
    jobs: JobQueue = app.jobs
    for _ in range(3):
        workers.start("--queues", "default", "--concurrency", "2")
    eventually(lambda: len(jobs.list_jobs(task="tick")) >= 5, timeout=60, interval=0.2)
    workers.stop_all()
    ticks = jobs.list_jobs(task="tick", limit=1000)
    slots = [job.run_at for job in ticks]
    assert len(slots) == len(set(slots)), "a slot was enqueued twice"
    assert all(job.attempt <= 1 for job in ticks)
    assert sum(job.state is JobState.COMPLETED for job in ticks) >= 4


def test_a_global_limit_holds_across_three_worker_processes(
    app: Any, workers: WorkerProcesses
) -> None:
    jobs: JobQueue = app.jobs
    jobs.configure_queue("scarce", global_limit=2)
    total = 40
    jobs.enqueue_many(None, [app.scarce.prepare(n=i) for i in range(total)])
    for _ in range(3):
        workers.start("--queues", "scarce", "--concurrency", "3")
    eventually(
        lambda: len(jobs.list_jobs(state="completed", queue="scarce")) == total,
        timeout=120,
        interval=0.2,
        describe=lambda: f"jobs: {jobs.counts()}, workers said:\n{workers.logs()[-6000:]}",
    )
    workers.stop_all()
    with app.engine.connect() as conn:
        spans = conn.execute(select(app.runs.c.started, app.runs.c.ended)).all()
    assert len(spans) == total
    events = sorted(
        [(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda ev: (ev[0], ev[1])
    )
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    assert peak == 2, f"{peak} jobs of a queue limited to 2 overlapped"
