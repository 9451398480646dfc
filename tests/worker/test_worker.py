"""A real threaded Worker on each database."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import Cancel, ConfigurationError, JobQueue, JobState, Retry, Snooze, events
from sqljobs.schema import jobs_table
from tests.conftest import Record
from tests.helpers import (
    EventLog,
    add_counters,
    counter_total,
    eventually,
    finished,
    increment,
    wait_until_it_outlived_its_lease,
)


def test_jobs_run_with_their_own_session_and_commit_with_completion(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory)
    sessions: list[int] = []
    lock = threading.Lock()

    @jobs.task
    def bump(session: Session, counter_id: int) -> str:
        with lock:
            sessions.append(id(session))
        increment(session, counter_id)
        return "bumped"

    with session_factory() as request_session:
        ids = [bump.enqueue(request_session, counter_id=1) for _ in range(20)]
        request_session.commit()
        with jobs.worker(concurrency=4, poll_interval=0.05):
            eventually(lambda: finished(jobs, *ids))
        assert id(request_session) not in sessions
    assert counter_total(session_factory) == 20
    assert all(
        jobs.get(i).state is JobState.COMPLETED and jobs.get(i).result == "bumped" for i in ids
    )


def test_a_failing_task_rolls_back_its_writes_and_records_the_error(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory)

    @jobs.task(max_attempts=2, backoff=0)
    def half_done(session: Session) -> None:
        increment(session)
        raise RuntimeError("second half failed")

    job_id = half_done.enqueue()
    with jobs.worker(concurrency=2, poll_interval=0.05):
        eventually(lambda: finished(jobs, job_id))
    job = jobs.get(job_id)
    assert job.state is JobState.DISCARDED and job.attempt == 2
    assert [(e.attempt, e.type, e.message) for e in job.errors] == [
        (1, "RuntimeError", "second half failed"),
        (2, "RuntimeError", "second half failed"),
    ]
    assert "increment" not in job.errors[0].traceback and "half_done" in job.errors[0].traceback
    assert counter_total(session_factory) == 0


def test_concurrency_limit_is_honoured_and_reached(jobs: JobQueue) -> None:
    active = peak = 0
    lock = threading.Lock()

    @jobs.task
    def hold() -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        with lock:
            active -= 1

    ids = jobs.enqueue_many(None, [hold.prepare() for _ in range(24)])
    with jobs.worker(concurrency=3, poll_interval=0.02):
        eventually(lambda: finished(jobs, *ids))
    assert peak == 3


def test_pool_checkedout_stays_bounded(make_engine: Any) -> None:
    engine: Engine = make_engine(pool_size=5, max_overflow=2)
    factory = sessionmaker(engine)
    jobs = JobQueue(factory)
    jobs.create_schema()
    peak = 0
    lock = threading.Lock()

    @jobs.task
    def work(session: Session) -> None:
        nonlocal peak
        session.connection()
        time.sleep(0.01)
        with lock:
            peak = max(peak, engine.pool.checkedout())  # type: ignore[attr-defined]

    ids = jobs.enqueue_many(None, [work.prepare() for _ in range(40)])
    with jobs.worker(concurrency=4, poll_interval=0.02):
        eventually(lambda: finished(jobs, *ids))
    assert 0 < peak <= 4 + 3


def test_a_pool_too_small_for_the_concurrency_is_refused(make_engine: Any) -> None:
    engine = make_engine(pool_size=3, max_overflow=0)
    jobs = JobQueue(sessionmaker(engine))
    refused = r"concurrency=4 needs up to 7 connections.*at most 3"
    with pytest.raises(ConfigurationError, match=refused):
        jobs.worker(concurrency=4).start()


def test_graceful_stop_lets_a_running_job_finish(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory)
    started, release = threading.Event(), threading.Event()

    @jobs.task
    def slow(session: Session) -> None:
        started.set()
        release.wait(10)
        increment(session)

    job_id = slow.enqueue()
    waiting = slow.configure(delay=3600).enqueue()
    worker = jobs.worker(concurrency=1, poll_interval=0.02)
    worker.start()
    assert started.wait(10)
    stopping = EventLog(jobs, events.WORKER_STOPPING)
    stopper = threading.Thread(target=worker.stop, kwargs={"grace": 10})
    stopper.start()
    assert stopping.wait_for(events.WORKER_STOPPING)["running"] == 1
    stopper.join(timeout=0.2)  # a negative check: stop() must still be waiting for the job
    assert stopper.is_alive()
    release.set()
    stopper.join(10)
    assert jobs.get(job_id).state is JobState.COMPLETED
    assert counter_total(session_factory) == 1
    assert jobs.get(waiting).state is JobState.SCHEDULED


def _stuck_task_with_a_session(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> tuple[int, threading.Event, threading.Event]:
    add_counters(session_factory)
    started, release = threading.Event(), threading.Event()

    @jobs.task
    def stubborn(session: Session) -> None:
        increment(session)
        started.set()
        release.wait(10)

    return stubborn.enqueue(), started, release


@pytest.mark.needs("concurrent_writers")
def test_a_job_over_the_grace_period_is_released_and_cannot_commit(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    job_id, started, release = _stuck_task_with_a_session(jobs, session_factory)
    worker = jobs.worker(concurrency=1, poll_interval=0.02)
    worker.start()
    assert started.wait(10)
    stubborn_thread = next(t for t in threading.enumerate() if t.name == "sqljobs-executor-0")
    worker.stop(grace=0.1)
    released = jobs.get(job_id)
    assert released.state is JobState.AVAILABLE and released.attempt == 0
    release.set()
    stubborn_thread.join(10)  # its commit is refused: it no longer holds the lease
    assert counter_total(session_factory) == 0
    assert jobs.drain().completed == [job_id]
    assert counter_total(session_factory) == 1


@pytest.mark.dialects("sqlite", reason="SQLite's own behaviour: one writer at a time")
def test_sqlite_a_job_over_the_grace_period_finishes_since_it_holds_the_write_lock(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    """The stuck task holds the only write lock, so releasing its job waits for it; the job
    then finishes normally and is not released. Its effect still counts once."""
    job_id, started, release = _stuck_task_with_a_session(jobs, session_factory)
    worker = jobs.worker(concurrency=1, poll_interval=0.02)
    worker.start()
    assert started.wait(10)
    stop_began = EventLog(jobs, events.WORKER_STOPPING)
    stopping = threading.Thread(target=worker.stop, kwargs={"grace": 0.1})
    stopping.start()
    stop_began.wait_for(events.WORKER_STOPPING)
    release.set()
    stopping.join(30)
    assert jobs.get(job_id).state is JobState.COMPLETED
    assert counter_total(session_factory) == 1


def test_hostile_tasks_do_not_kill_the_worker(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        session.add(Record(id=1))
        session.commit()

    @jobs.task(max_attempts=1)
    def exits() -> None:
        raise SystemExit(3)

    @jobs.task(max_attempts=1)
    def interrupts() -> None:
        raise KeyboardInterrupt

    @jobs.task(max_attempts=1)
    def poisons(session: Session) -> None:
        session.add(Record(id=1))
        session.flush()

    @jobs.task(max_attempts=1)
    def bad_result() -> object:
        return object()

    @jobs.task(max_attempts=1)
    def commits_itself(session: Session) -> None:
        session.commit()
        session.close()

    @jobs.task
    def fine() -> int:
        return 42

    ids = [t.enqueue() for t in (exits, interrupts, poisons, bad_result, commits_itself)]
    ok = fine.enqueue()
    with jobs.worker(concurrency=2, poll_interval=0.02):
        eventually(lambda: finished(jobs, *ids, ok))
    errors = {jobs.get(i).task.rsplit(".", 1)[-1]: jobs.get(i).errors[-1].type for i in ids[:4]}
    assert errors == {
        "exits": "SystemExit",
        "interrupts": "KeyboardInterrupt",
        "poisons": IntegrityError.__module__ + ".IntegrityError",
        "bad_result": "sqljobs.exceptions.SerializationError",
    }
    assert all(jobs.get(i).state is JobState.DISCARDED for i in ids[:4])
    # Committing the job's session breaks exactly-once: discarded (issue 12, case 18b).
    assert jobs.get(ids[4]).state is JobState.DISCARDED
    assert jobs.get(ids[4]).errors[-1].type == "sqljobs.exceptions.JobSessionMisused"
    assert jobs.get(ok).result == 42


def test_control_exceptions(jobs: JobQueue) -> None:
    calls: list[str] = []

    @jobs.task(max_attempts=3)
    def controlled(mode: str) -> None:
        calls.append(mode)
        if mode == "retry" and calls.count("retry") == 1:
            raise Retry(delay=0)
        if mode == "cancel":
            raise Cancel("no longer wanted")
        if mode == "snooze" and calls.count("snooze") == 1:
            raise Snooze(0)

    retry, cancel, snooze = (controlled.enqueue(mode=m) for m in ("retry", "cancel", "snooze"))
    with jobs.worker(concurrency=1, poll_interval=0.02):
        eventually(lambda: finished(jobs, retry, cancel, snooze))
    assert jobs.get(retry).state is JobState.COMPLETED and jobs.get(retry).attempt == 2
    assert jobs.get(cancel).state is JobState.CANCELLED
    assert jobs.get(cancel).errors[-1].message == "no longer wanted"
    assert jobs.get(snooze).state is JobState.COMPLETED and jobs.get(snooze).attempt == 1


def test_unknown_tasks_and_malformed_rows_are_handled(jobs: JobQueue) -> None:
    @jobs.task
    def typed(n: int) -> int:
        return n

    def raw_row(task: str, args: Any, max_attempts: int = 1) -> int:
        from sqljobs._utils import utcnow

        with jobs.engine.begin() as conn:
            result = conn.execute(
                insert(jobs_table).values(
                    task=task,
                    args=args,
                    queue="default",
                    state="available",
                    priority=0,
                    attempt=0,
                    max_attempts=max_attempts,
                    run_at=utcnow(),
                    created_at=utcnow(),
                    errors=[],
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    unknown = raw_row("no.such.task", {}, max_attempts=2)
    wrong_type = raw_row(typed.name, {"n": "three"}, max_attempts=5)
    not_object = raw_row(typed.name, [1, 2], max_attempts=5)
    good = typed.enqueue(n=3)
    with jobs.worker(concurrency=1, poll_interval=0.02):
        eventually(lambda: finished(jobs, wrong_type, not_object, good))
    # A worker claims only the tasks it registered: the unknown one waits for a worker that
    # knows it (a rolling deploy), untouched.
    assert jobs.get(unknown).state is JobState.AVAILABLE and jobs.get(unknown).attempt == 0
    for job_id in (wrong_type, not_object):
        job = jobs.get(job_id)
        assert job.state is JobState.DISCARDED and job.attempt == 1  # permanent: no retries
        assert job.errors[-1].type == "sqljobs.exceptions.InvalidArguments"
    assert jobs.get(good).result == 3


def test_a_late_sync_task_is_rolled_back_as_timed_out(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory)

    @jobs.task(timeout=0.1, max_attempts=1)
    def late(session: Session) -> None:
        increment(session)
        time.sleep(0.3)

    job_id = late.enqueue()
    with jobs.worker(concurrency=1, poll_interval=0.02):
        eventually(lambda: finished(jobs, job_id))
    assert jobs.get(job_id).errors[-1].type == "sqljobs.exceptions.JobTimeout"
    assert counter_total(session_factory) == 0


def test_heartbeats_keep_a_long_job_leased(jobs: JobQueue) -> None:
    release = threading.Event()

    @jobs.task(max_attempts=1)
    def long() -> str:
        release.wait(timeout=60)
        return "done"

    job_id = long.enqueue()
    with jobs.worker(concurrency=1, poll_interval=0.02, lease=2.0, heartbeat_interval=0.2):
        wait_until_it_outlived_its_lease(jobs, job_id, lease=2.0)
        release.set()
        eventually(lambda: finished(jobs, job_id))
    job = jobs.get(job_id)
    assert job.state is JobState.COMPLETED and job.attempt == 1 and job.errors == ()


def test_enqueue_wakes_an_idle_worker_in_the_same_process(jobs: JobQueue) -> None:
    @jobs.task
    def quick() -> None:
        pass

    idle = EventLog(jobs, events.WORKER_IDLE)
    with jobs.worker(concurrency=1, poll_interval=600):
        idle.wait_for(events.WORKER_IDLE, reason="no jobs")  # now waiting out its long poll
        job_id = quick.enqueue()
        # Polling would take 10 minutes; only the wake-up runs it within the deadline.
        eventually(lambda: finished(jobs, job_id), timeout=60)
    assert idle.count(events.WORKER_IDLE, reason="no jobs") >= 1


@pytest.mark.slow
def test_no_threads_leak_across_many_jobs_and_workers(jobs: JobQueue) -> None:
    @jobs.task
    def noop() -> None:
        pass

    before = threading.active_count()
    for _ in range(3):
        ids = jobs.enqueue_many(None, [noop.prepare() for _ in range(100)])
        with jobs.worker(concurrency=4, poll_interval=0.02):
            eventually(lambda batch=ids: finished(jobs, *batch))  # type: ignore[misc]
    assert threading.active_count() == before


@pytest.mark.needs("file_database")
def test_in_memory_sqlite_is_refused_for_threaded_workers() -> None:
    jobs = JobQueue(sessionmaker(create_engine("sqlite://")))
    with pytest.raises(ConfigurationError, match="in-memory SQLite"):
        jobs.worker().start()


@pytest.mark.dialects(
    "sqlite", reason="the behaviour does not depend on the database; one is enough"
)
def test_worker_refuses_to_start_without_tables(dialect: str, tmp_path: Any) -> None:
    from sqljobs import SchemaNotReady

    jobs = JobQueue(sessionmaker(create_engine(f"sqlite:///{tmp_path / 'empty.db'}")))
    with pytest.raises(SchemaNotReady, match="create_schema"):
        jobs.worker().start()


@pytest.mark.needs("listen_notify")
def test_listen_notify_wakes_a_worker_in_another_process_at_once(
    jobs: JobQueue, make_engine: Any
) -> None:
    @jobs.task(name="wake")
    def wake() -> None:
        pass

    # A second JobQueue on its own engine stands for another process: in-process wake-ups
    # cannot reach the worker, only PostgreSQL's NOTIFY can.
    producer = JobQueue(sessionmaker(make_engine()))
    remote_wake = producer.task(name="wake")(lambda: None)
    seen = EventLog(jobs, events.WORKER_LISTENING, events.WORKER_IDLE)
    with jobs.worker(concurrency=1, poll_interval=600):
        seen.wait_for(events.WORKER_LISTENING)
        seen.wait_for(events.WORKER_IDLE, reason="no jobs")  # waits out a 10-minute poll
        job_id = remote_wake.enqueue()
        eventually(lambda: finished(jobs, job_id), timeout=60)
