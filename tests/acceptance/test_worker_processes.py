"""Real ``sqljobs worker`` processes, real signals: exactly-once effects, crash rescue,
graceful shutdown."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sqljobs import Job, JobQueue, JobState
from tests.helpers import add_counters, app_module, counter_total, eventually
from tests.processes import WorkerProcesses


@pytest.fixture
def app(db_url: str, engine: Any) -> Iterator[Any]:
    with app_module("tests.acceptance.app", db_url) as module:
        module.jobs.create_schema()
        add_counters(module.SessionLocal, 10)
        yield module


@pytest.fixture
def workers(db_url: str, tmp_path: Path) -> Iterator[WorkerProcesses]:
    with WorkerProcesses(
        db_url, tmp_path, "--log-level", "WARNING", app="tests.acceptance.app:jobs"
    ) as started:
        yield started


def all_finished(jobs: JobQueue) -> bool:
    counts = jobs.counts()
    return bool(counts) and all(state.is_finished for (_q, state) in counts)


def test_two_worker_processes_run_2000_jobs_exactly_once(
    app: Any, workers: WorkerProcesses
) -> None:
    jobs: JobQueue = app.jobs
    total = 2000
    jobs.enqueue_many(None, [app.bump.prepare(counter_id=1 + i % 10) for i in range(total)])
    first = workers.start("--concurrency", "4", "--poll-interval", "0.05")
    second = workers.start("--concurrency", "4", "--poll-interval", "0.05")
    eventually(lambda: all_finished(jobs), timeout=240, interval=0.2)
    assert jobs.counts() == {("default", JobState.COMPLETED): total}
    assert counter_total(app.SessionLocal) == total
    retried = [
        (j.id, j.attempt, [f"{e.type}: {e.message[:300]}" for e in j.errors])
        for j in jobs.list_jobs(limit=total)
        if j.attempt != 1
    ]
    assert not retried, retried
    completed_by = []
    for worker in (first, second):
        code, out = worker.stop(), worker.output()
        assert code == 0, out
        completed_by.append(int(re.search(r"stopped: (\d+) completed", out).group(1)))  # type: ignore[union-attr]
    assert sum(completed_by) == total
    assert min(completed_by) > 0, completed_by  # both processes really shared the work


def marker_text(marker: Path) -> str:
    """What the task wrote to its marker; "" until it exists and holds text (the task
    creates the file, then writes its pid)."""
    return marker.read_text() if marker.exists() else ""


def test_kill_9_mid_job_is_rescued_and_applied_once(
    app: Any, workers: WorkerProcesses, tmp_path: Path
) -> None:
    jobs: JobQueue = app.jobs
    marker = tmp_path / "started"
    job_id = app.bump.enqueue(counter_id=1, hold=30, marker=str(marker))
    victim = workers.start("--concurrency", "2", "--lease", "1", "--poll-interval", "0.05")
    assert int(eventually(lambda: marker_text(marker), timeout=60)) == victim.pid
    victim.sigkill()
    assert jobs.get(job_id).state is JobState.RUNNING  # nobody knows yet that it died
    marker.unlink()
    # A second worker rescues the job once its lease expires; attempt 2 does not hold.
    rescuer = workers.start("--concurrency", "2", "--lease", "1", "--poll-interval", "0.05")
    assert int(eventually(lambda: marker_text(marker), timeout=60)) == rescuer.pid
    job = eventually(lambda: (j := jobs.get(job_id)).state is JobState.COMPLETED and j, timeout=90)
    assert job.attempt == 2
    assert [e.type for e in job.errors] == ["LeaseExpired"]
    assert counter_total(app.SessionLocal) == 1  # the killed attempt left no trace


def test_sigterm_finishes_the_running_job_then_exits(
    app: Any, workers: WorkerProcesses, tmp_path: Path
) -> None:
    jobs: JobQueue = app.jobs
    marker = tmp_path / "started"
    job_id = app.bump.enqueue(counter_id=1, hold=1.0, marker=str(marker))
    worker = workers.start("--concurrency", "1", "--grace", "20", "--poll-interval", "0.05")
    eventually(marker.exists, timeout=60)
    code, out = worker.stop(), worker.output()
    assert code == 0, out
    assert "stopped" in out
    assert jobs.get(job_id).state is JobState.COMPLETED
    assert counter_total(app.SessionLocal) == 1


def _sigterm_past_the_grace_period(app: Any, workers: WorkerProcesses, tmp_path: Path) -> Job:
    marker = tmp_path / "started"
    job_id = app.bump.enqueue(counter_id=1, hold=5, marker=str(marker))
    worker = workers.start("--concurrency", "1", "--grace", "0.5", "--poll-interval", "0.05")
    eventually(marker.exists, timeout=60)
    code, out = worker.stop(timeout=60), worker.output()
    assert code == 0, out
    job: Job = app.jobs.get(job_id)
    return job


@pytest.mark.needs("concurrent_writers")
def test_sigterm_past_the_grace_period_releases_the_job(
    app: Any, workers: WorkerProcesses, tmp_path: Path
) -> None:
    job = _sigterm_past_the_grace_period(app, workers, tmp_path)
    assert job.state is JobState.AVAILABLE and job.attempt == 0
    assert counter_total(app.SessionLocal) == 0


@pytest.mark.dialects("sqlite", reason="SQLite's own behaviour: one writer at a time")
def test_sqlite_sigterm_past_the_grace_period_lets_the_job_holding_the_write_lock_finish(
    app: Any, workers: WorkerProcesses, tmp_path: Path
) -> None:
    job = _sigterm_past_the_grace_period(app, workers, tmp_path)
    assert job.state is JobState.COMPLETED and counter_total(app.SessionLocal) == 1
