"""Issue 12, case 12: a sync task hung past its timeout is really stopped. Its session's
connection is ended from outside (its transaction rolled back, its locks released), the
attempt is recorded as ``JobTimeout`` and retried; the thread left in the task is replaced."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import JobContext, JobQueue, JobState
from tests.conftest import Counter
from tests.helpers import add_counters, counter_total, eventually, increment

WORKER = {"concurrency": 1, "poll_interval": 0.05, "heartbeat_interval": 0.2, "lease": 5}
TIMEOUT = "sqljobs.exceptions.JobTimeout"


def can_write_the_counter_at_once(engine: Engine) -> bool:
    """Another session takes the counter row's lock (SQLite: the write lock) without
    waiting for it: NOWAIT / a zero busy timeout fail at once if anyone holds it."""
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA busy_timeout = 0")
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                locked = select(Counter.n).where(Counter.id == 1).with_for_update(nowait=True)
                conn.execute(locked)
            conn.execute(update(Counter).where(Counter.id == 1).values(n=Counter.n))
            conn.rollback()
            return True
    except OperationalError:
        return False


def timed_out_once(jobs: JobQueue, job_id: int) -> bool:
    return [error.type for error in jobs.get(job_id).errors] == [TIMEOUT]


def test_a_hung_sync_task_holding_row_locks_is_stopped_and_its_locks_released(
    jobs: JobQueue,
    session_factory: sessionmaker[Session],
    make_engine: Callable[..., Engine],
) -> None:
    add_counters(session_factory)
    other_session = make_engine()
    release = threading.Event()

    @jobs.task(timeout=1, max_attempts=3, backoff=0.1)
    def bump(session: Session, ctx: JobContext) -> int:
        increment(session)  # holds the row's lock (SQLite: the write lock) until it ends
        if ctx.attempt == 1:
            release.wait(120)  # hung in Python, its transaction open
        return ctx.attempt

    job_id = bump.enqueue()
    try:
        with jobs.worker(**WORKER) as worker:
            eventually(lambda: timed_out_once(jobs, job_id))
            eventually(lambda: can_write_the_counter_at_once(other_session))
            eventually(lambda: jobs.get(job_id).state is JobState.COMPLETED)
            assert not release.is_set()  # all this while the first attempt still hung
            release.set()
            worker.stop(grace=10)
    finally:
        release.set()
    job = jobs.get(job_id)
    assert (job.attempt, job.result) == (2, 2)  # the hung attempt's late return is ignored
    assert [error.type for error in job.errors] == [TIMEOUT]
    assert counter_total(session_factory) == 1


def test_a_sync_task_hung_in_python_is_timed_out_and_retried(jobs: JobQueue) -> None:
    release = threading.Event()
    attempts: list[int] = []

    @jobs.task(timeout=1, max_attempts=3, backoff=0.1)
    def wait(ctx: JobContext) -> int:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            release.wait(120)  # no database work at all
        return ctx.attempt

    job_id = wait.enqueue()
    try:
        with jobs.worker(**WORKER) as worker:
            eventually(lambda: jobs.get(job_id).state is JobState.COMPLETED)
            assert not release.is_set()
            release.set()
            worker.stop(grace=10)
    finally:
        release.set()
    job = jobs.get(job_id)
    assert (job.attempt, job.result) == (2, 2)
    assert [error.type for error in job.errors] == [TIMEOUT]
    assert attempts == [1, 2]


@pytest.mark.slow
def test_hung_sessions_do_not_keep_their_pool_connections(
    jobs: JobQueue, make_engine: Callable[..., Engine]
) -> None:
    """Four attempts hang in turn, each with a session, on a pool of exactly
    ``concurrency + 3`` = 4 connections: the fifth attempt still gets one and completes."""
    small_pool = JobQueue(sessionmaker(make_engine(pool_size=4, max_overflow=0)))
    release = threading.Event()

    @small_pool.task(timeout=1, max_attempts=5, backoff=0.1)
    def hang(session: Session, ctx: JobContext) -> int:
        session.execute(select(1))
        if ctx.attempt < 5:
            release.wait(120)
        return ctx.attempt

    job_id = hang.enqueue()
    try:
        with small_pool.worker(**WORKER) as worker:
            eventually(lambda: small_pool.get(job_id).state.is_finished, timeout=60)
            release.set()
            worker.stop(grace=10)
    finally:
        release.set()
        small_pool.close()
    job = jobs.get(job_id)
    assert (job.state, job.attempt, job.result) == (JobState.COMPLETED, 5, 5)
    assert [error.type for error in job.errors] == [TIMEOUT] * 4


@pytest.mark.needs("concurrent_writers")  # SQLite: the cancel itself waits for the lock
def test_a_cancelled_sync_tasks_session_is_ended_and_its_locks_released(
    jobs: JobQueue,
    session_factory: sessionmaker[Session],
    make_engine: Callable[..., Engine],
) -> None:
    add_counters(session_factory)
    other_session = make_engine()
    release = threading.Event()
    started = threading.Event()

    @jobs.task(max_attempts=1)
    def bump(session: Session) -> None:
        increment(session)
        started.set()
        release.wait(120)  # no timeout: only the lost lease can end it

    job_id = bump.enqueue()
    try:
        with jobs.worker(**WORKER) as worker:
            assert started.wait(30)
            assert not can_write_the_counter_at_once(other_session)
            jobs.cancel(job_id)
            eventually(lambda: can_write_the_counter_at_once(other_session))
            assert not release.is_set()
            release.set()
            worker.stop(grace=10)
    finally:
        release.set()
    assert jobs.get(job_id).state is JobState.CANCELLED
    assert counter_total(session_factory) == 0
