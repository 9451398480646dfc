"""Bulk operations beside real worker processes (issue 15): a job a worker claims while a
bulk cancel runs is never cancelled under it, and a bulk retry runs each job once more."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sqljobs import JobQueue, JobState
from tests.conftest import Counter
from tests.helpers import add_counters, all_finished, app_module, eventually
from tests.processes import WorkerProcesses

JOBS = 300
WORKER_ARGS = ("--concurrency", "4", "--poll-interval", "0.02", "--log-level", "ERROR")


@pytest.fixture
def app(db_url: str, engine: Any) -> Iterator[Any]:
    with app_module("tests.acceptance.bulk_app", db_url) as module:
        module.jobs.create_schema()
        add_counters(module.SessionLocal, JOBS)
        yield module


@pytest.fixture
def workers(db_url: str, tmp_path: Path) -> Iterator[WorkerProcesses]:
    with WorkerProcesses(db_url, tmp_path, app="tests.acceptance.bulk_app:jobs") as started:
        yield started


def _effects(app: Any) -> dict[int, int]:
    with app.SessionLocal() as session:
        return {c.id: c.n for c in session.scalars(select(Counter))}


def test_a_bulk_cancel_beside_two_workers_never_cancels_a_job_they_claimed(
    dialect: str, app: Any, workers: WorkerProcesses
) -> None:
    jobs: JobQueue = app.jobs
    hold = 0.002 if dialect == "sqlite" else 0.01
    ids = jobs.enqueue_many(None, [app.apply.prepare(key=k, hold=hold) for k in range(1, JOBS + 1)])
    pool = [workers.start(*WORKER_ARGS) for _ in range(2)]
    eventually(lambda: len(jobs.list_jobs(state="completed", limit=30)) >= 30, timeout=120)

    result = jobs.bulk("cancel", state="available", batch_size=5)

    eventually(lambda: all_finished(jobs, ids), timeout=240, interval=0.1)
    workers.stop_all(pool)
    final = {job.id: job for job in jobs.list_jobs(limit=JOBS)}
    cancelled = {i for i, j in final.items() if j.state is JobState.CANCELLED}
    completed = {i for i, j in final.items() if j.state is JobState.COMPLETED}
    assert cancelled == set(result.changed) and cancelled and completed
    assert cancelled | completed == set(ids)
    for job_id in cancelled:  # cancelled while it waited, never while it ran
        job = final[job_id]
        assert (job.attempt, job.started_at) == (0, None), job
        assert [e.message for e in job.errors] == ["cancelled by an operator while available"]
    effects = _effects(app)
    assert {k for k, n in effects.items() if n} == {final[i].args["key"] for i in completed}
    assert set(effects.values()) == {0, 1}
    assert all(final[i].attempt == 1 and final[i].errors == () for i in completed)


def test_a_bulk_retry_beside_two_workers_runs_each_discarded_job_exactly_once_more(
    dialect: str, app: Any, workers: WorkerProcesses
) -> None:
    jobs: JobQueue = app.jobs
    prepared = [app.apply.prepare(key=k, fail_first=True) for k in range(1, JOBS + 1)]
    ids = jobs.enqueue_many(None, prepared)
    jobs.drain()
    assert jobs.counts() == {("default", JobState.DISCARDED): JOBS}
    pool = [workers.start(*WORKER_ARGS) for _ in range(2)]

    # Small batches: workers claim and complete the first ones while later ones are retried.
    result = jobs.bulk("retry", state="discarded", batch_size=5)

    eventually(lambda: all_finished(jobs, ids), timeout=240, interval=0.1)
    workers.stop_all(pool)
    assert sorted(result.changed) == sorted(ids) and result.skipped == {}
    assert jobs.counts() == {("default", JobState.COMPLETED): JOBS}
    assert {(j.attempt, len(j.errors)) for j in jobs.list_jobs(limit=JOBS)} == {(2, 1)}
    assert set(_effects(app).values()) == {1}
