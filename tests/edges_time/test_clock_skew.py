"""Issue 12, case 6: workers whose clocks disagree never run a job twice at once.

Leases, rescues, staging and worker heartbeats are judged on the database's clock. These
tests set the Python clock of some threads 20 seconds ahead or an hour behind (sqljobs reads
the time through ``sqljobs._utils.utcnow``, patched in every module that imported it) and
check that the database's clock decides.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

import sqljobs._utils
from sqljobs import JobQueue, JobState, events
from tests.helpers import EventLog, eventually


def skew_clock(
    monkeypatch: pytest.MonkeyPatch, by: timedelta, *, honest: Collection[int] = ()
) -> None:
    """Move sqljobs' Python clock by ``by``, except in the threads whose idents are in
    ``honest`` (another worker's, on a machine whose clock is right)."""
    real: Callable[[], datetime] = sqljobs._utils.utcnow

    def skewed() -> datetime:
        now = real()
        return now if threading.get_ident() in honest else now + by

    for name, module in list(sys.modules.items()):
        if name.startswith("sqljobs") and getattr(module, "utcnow", None) is real:
            monkeypatch.setattr(module, "utcnow", skewed)


def thread_idents() -> set[int]:
    return {thread.ident for thread in threading.enumerate() if thread.ident is not None}


def test_a_worker_whose_clock_runs_ahead_does_not_rescue_healthy_jobs(
    jobs: JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    starts: list[int] = []

    @jobs.task
    def long_running() -> None:
        starts.append(1)
        release.wait(60)

    job_id = long_running.enqueue()
    rescued = EventLog(jobs, events.JOB_RESCUED)
    before = thread_idents()
    owner = jobs.worker(concurrency=1, poll_interval=0.02, lease=2, rescue_interval=3600)
    rescuer = jobs.worker(
        concurrency=1, poll_interval=0.02, lease=2, heartbeat_interval=0.05, rescue_interval=0.05
    )
    owner.start()
    try:
        eventually(lambda: starts and jobs.get(job_id).started_at is not None)
        owner_threads = thread_idents() - before
        # The rescuer's machine (every thread but the owner's) is 20 seconds ahead.
        skew_clock(monkeypatch, timedelta(seconds=20), honest=owner_threads)
        passes: list[int] = []
        store_rescue = jobs.store.rescue

        def counted_rescue(**options: Any) -> list[int]:
            found = store_rescue(**options)
            if threading.get_ident() not in owner_threads:
                passes.append(len(found))
            return found

        monkeypatch.setattr(jobs.store, "rescue", counted_rescue)
        rescuer.start()
        try:
            eventually(lambda: len(passes) >= 10)  # ten rescue passes, each 20 s ahead
        finally:
            release.set()
            eventually(lambda: jobs.get(job_id).state.is_finished)
            rescuer.stop()
    finally:
        release.set()
        owner.stop()
    job = jobs.get(job_id)
    assert rescued.count(events.JOB_RESCUED) == 0 and sum(passes) == 0
    assert job.state is JobState.COMPLETED and job.attempt == 1 and not job.errors
    assert starts == [1]


def test_a_worker_whose_clock_runs_behind_still_claims_due_jobs(
    jobs: JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[int] = []

    @jobs.task
    def due_now() -> None:
        runs.append(1)

    due_at = sqljobs._utils.utcnow()
    # This machine is an hour behind: to it, a job due now by the real clock lies an hour
    # ahead, so it is stored as scheduled.
    skew_clock(monkeypatch, -timedelta(hours=1))
    job_id = due_now.configure(run_at=due_at).enqueue()
    assert jobs.get(job_id).state is JobState.SCHEDULED
    with jobs.worker(concurrency=1, poll_interval=0.02):
        eventually(lambda: jobs.get(job_id).state is JobState.COMPLETED, timeout=15)
    assert runs == [1]


@pytest.mark.needs("file_database")  # SQLite stores times as text, compared as strings
def test_the_database_clock_is_stored_like_every_other_time(jobs: JobQueue) -> None:
    # SQLite compares datetimes as text: a lease written by the database's clock must have
    # the format Python-written times have, or "expired" would be decided on characters.
    @jobs.task
    def quick() -> None:
        pass

    job_id = quick.enqueue()
    jobs.store.claim(worker_id="w", queues=["default"], limit=1, lease=timedelta(seconds=30))
    with jobs.store.engine.connect() as conn:
        row = conn.execute(
            text("SELECT created_at, lease_expires_at FROM sqljobs_jobs WHERE id = :id"),
            {"id": job_id},
        ).one()
    pattern = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}"
    assert re.fullmatch(pattern, row.created_at) and re.fullmatch(pattern, row.lease_expires_at)
    assert row.created_at < row.lease_expires_at
