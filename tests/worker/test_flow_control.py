"""Unique jobs, JobContext (progress, cancellation), timeouts: on every database."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import JobContext, JobQueue, JobState, Unique
from tests.helpers import add_counters, counter_total, eventually, finished, increment


def test_unique_enqueue_from_8_threads_gives_one_job(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    @jobs.task(unique=True)
    def rebuild(report_id: int) -> None:
        pass

    ids: list[int] = []
    barrier = threading.Barrier(8)

    def enqueue(use_session: bool) -> None:
        barrier.wait()
        if use_session:
            with session_factory() as db:
                ids.append(rebuild.enqueue(db, report_id=7))
                db.commit()
        else:
            ids.append(rebuild.enqueue(report_id=7))

    threads = [threading.Thread(target=enqueue, args=(i % 2 == 0,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 8 and len(set(ids)) == 1
    assert [j.id for j in jobs.list_jobs()] == ids[:1]
    other = rebuild.enqueue(report_id=8)
    assert other != ids[0]


def test_unique_scopes(jobs: JobQueue) -> None:
    @jobs.task(unique=Unique(scope="waiting"))
    def waiting_only(n: int) -> None:
        pass

    @jobs.task(unique=Unique(by_args=["n"]))
    def while_active(n: int, note: str = "") -> None:
        pass

    @jobs.task(unique=Unique(scope="all"))
    def forever(n: int) -> None:
        pass

    first = waiting_only.enqueue(n=1)
    assert waiting_only.enqueue(n=1) == first
    [claimed] = jobs.store.claim(
        worker_id="w", queues=["default"], limit=1, lease=timedelta(seconds=30)
    )
    assert claimed.id == first
    assert waiting_only.enqueue(n=1) != first  # it started: the key is free again

    active = while_active.enqueue(n=1, note="a")
    assert while_active.enqueue(n=1, note="b") == active  # only `n` makes the key
    jobs.drain()
    assert jobs.get(active).state is JobState.COMPLETED
    assert while_active.enqueue(n=1) != active  # finished: free again

    done = forever.enqueue(n=1)
    jobs.drain()
    assert forever.enqueue(n=1) == done  # held until pruned
    jobs.prune(older_than=0)
    assert forever.enqueue(n=1) != done


def test_unique_period_and_explicit_keys(jobs: JobQueue, session_factory: Any) -> None:
    @jobs.task(unique=Unique(by_args=False, period=timedelta(hours=1), scope="all"))
    def hourly_digest() -> None:
        pass

    @jobs.task
    def send(to: str) -> None:
        pass

    digest = hourly_digest.enqueue()
    jobs.drain()
    assert hourly_digest.enqueue() == digest  # same hour bucket
    with session_factory() as db:
        one = send.configure(unique_key="welcome:a").enqueue(db, to="a")
        assert send.configure(unique_key="welcome:a").enqueue(db, to="a") == one
        db.commit()
    assert send.configure(unique_key="welcome:a").enqueue(to="a") == one
    assert send.enqueue(to="a") != one


def test_progress_is_visible_while_running_and_kept_after(jobs: JobQueue) -> None:
    reported, release = threading.Event(), threading.Event()

    @jobs.task
    def export(ctx: JobContext, rows: int) -> dict[str, int]:
        ctx.set_progress(0.5, f"{rows // 2} of {rows}")
        reported.set()
        release.wait(10)
        ctx.set_progress(1.0, "done")
        return {"rows": rows}

    job_id = export.enqueue(rows=10)
    with jobs.worker(concurrency=1, poll_interval=0.02, heartbeat_interval=0.05):
        assert reported.wait(10)
        running = eventually(lambda: (j := jobs.get(job_id)).progress == 0.5 and j)
        assert running.state is JobState.RUNNING and running.progress_message == "5 of 10"
        release.set()
        job = jobs.wait(job_id, timeout=10)
    assert job.result == {"rows": 10}
    drained = export.enqueue(rows=4)
    release.set()
    jobs.drain()
    assert jobs.get(drained).progress == 1.0 and jobs.get(drained).progress_message == "done"


def test_context_describes_the_job(jobs: JobQueue) -> None:
    seen: list[tuple[int, int, str]] = []

    @jobs.task(queue="reports")
    def describe(ctx: JobContext) -> None:
        seen.append((ctx.job_id, ctx.attempt, ctx.queue))
        ctx.logger.info("working")

    job_id = describe.enqueue()
    jobs.drain()
    assert seen == [(job_id, 1, "reports")]


def test_cancelling_a_running_sync_job_stops_it_at_a_checkpoint(jobs: JobQueue) -> None:
    started = threading.Event()
    steps = 0

    @jobs.task
    def long_loop(ctx: JobContext) -> None:
        nonlocal steps
        started.set()
        while True:
            ctx.checkpoint()
            steps += 1
            time.sleep(0.02)

    job_id = long_loop.enqueue()
    with jobs.worker(concurrency=1, poll_interval=0.02, heartbeat_interval=0.05):
        assert started.wait(10)
        jobs.cancel(job_id)
        eventually(lambda: steps > 0 and finished(jobs, job_id))
    job = jobs.get(job_id)
    assert job.state is JobState.CANCELLED
    assert job.errors[-1].message == "cancelled by an operator while it was running"


@pytest.mark.needs("concurrent_writers")
def test_a_cancelled_job_with_a_session_is_rolled_back(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    # (On SQLite a running job with a session holds the only write lock, so an operator's
    # cancel waits for the job to end: cancellation of running jobs needs a server database.)
    add_counters(session_factory)
    started = threading.Event()

    @jobs.task
    def long_import(session: Session, ctx: JobContext) -> None:
        increment(session)
        started.set()
        while True:
            ctx.checkpoint()
            time.sleep(0.02)

    job_id = long_import.enqueue()
    with jobs.worker(concurrency=1, poll_interval=0.02, heartbeat_interval=0.05):
        assert started.wait(10)
        jobs.cancel(job_id)
        eventually(lambda: finished(jobs, job_id))
    # The worker has stopped: the task saw the cancellation, raised, and was rolled back.
    assert jobs.get(job_id).state is JobState.CANCELLED
    assert counter_total(session_factory) == 0


def test_cancelling_a_running_async_job_cancels_its_task(jobs: JobQueue) -> None:
    started = threading.Event()
    cancelled = threading.Event()

    @jobs.task
    async def waits() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    job_id = waits.enqueue()
    with jobs.worker(concurrency=1, poll_interval=0.02, heartbeat_interval=0.05):
        assert started.wait(10)
        jobs.cancel(job_id)
        assert cancelled.wait(10)
    assert jobs.get(job_id).state is JobState.CANCELLED


def test_an_async_task_past_its_timeout_is_cancelled(jobs: JobQueue) -> None:
    cancelled: list[bool] = []

    @jobs.task(timeout=0.2, max_attempts=1)
    async def slow() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)  # cut short at its timeout, not waited out
            raise

    job_id = slow.enqueue()
    jobs.drain()
    assert cancelled == [True]
    job = jobs.get(job_id)
    assert job.state is JobState.DISCARDED
    assert job.errors[-1].type == "sqljobs.exceptions.JobTimeout"


@pytest.mark.needs("statement_timeout")
def test_postgresql_enforces_the_timeout_on_statements(jobs: JobQueue) -> None:
    @jobs.task(timeout=0.3, max_attempts=1)
    def sleeps_in_sql(session: Session) -> None:
        session.execute(text("SELECT pg_sleep(5)"))

    job_id = sleeps_in_sql.enqueue()
    jobs.drain()
    # The server cancelled pg_sleep(5) itself: its error names the statement timeout.
    assert "canceling statement due to statement timeout" in jobs.get(job_id).errors[-1].message
