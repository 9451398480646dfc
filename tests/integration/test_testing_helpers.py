"""Issue 13, items 1-4: sqljobs.testing against a real app on each database - inline mode
runs every job in the committing thread even while a lifespan worker runs, raises task
errors to the committer, tests can reset and scope the queue, and switch the in-process
worker off after the app was imported."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

import sqljobs.fastapi
from sqljobs import JobQueue, JobState, events, testing
from sqljobs.fastapi import Enqueuer, enqueuer
from tests.helpers import EventLog


class Boom(Exception):
    pass


def _app(
    jobs: JobQueue, session_factory: sessionmaker[Session], ran_in: dict[int, int]
) -> tuple[FastAPI, sqljobs.fastapi.WorkerLifespan]:
    """An app whose endpoint enqueues in the request's session, commits, and reports the
    committing thread and the job's state right after ``commit()`` returned."""

    @jobs.task(name="record_thread")
    def record_thread(n: int) -> None:
        ran_in[n] = threading.get_ident()

    def get_db() -> Iterator[Session]:
        with session_factory() as db:
            yield db

    lifespan = sqljobs.fastapi.lifespan(jobs, concurrency=4, poll_interval=0.01)
    app = FastAPI(lifespan=lifespan)
    db_dependency, enqueue_dependency = Depends(get_db), Depends(enqueuer(get_db))

    @app.post("/notes/{n}")
    def note(n: int, enqueue: Enqueuer = enqueue_dependency, db: Session = db_dependency) -> Any:
        job_id = enqueue(record_thread, n=n)
        db.commit()
        return {
            "job_id": job_id,
            "thread": threading.get_ident(),
            "state": jobs.get(job_id).state.value,
        }

    return app, lifespan


def test_inline_runs_every_job_in_the_committing_thread_while_the_lifespan_worker_runs(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    ran_in: dict[int, int] = {}
    app, lifespan = _app(jobs, session_factory, ran_in)
    with testing.inline(jobs), TestClient(app) as client:
        assert lifespan.worker is not None  # the in-process worker polls meanwhile
        answers = [client.post(f"/notes/{n}").json() for n in range(20)]
    assert [answer["state"] for answer in answers] == ["completed"] * 20
    assert [ran_in.get(n) for n in range(20)] == [answer["thread"] for answer in answers]


def test_inline_raises_the_task_error_from_commit_and_stores_the_failure(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    @jobs.task(max_attempts=1)
    def explode() -> None:
        raise Boom("task failed")

    with testing.inline(jobs), session_factory() as db:
        job_id = explode.enqueue(db)
        with pytest.raises(Boom, match="task failed"):
            db.commit()
        assert db.execute(text("SELECT 1")).scalar_one() == 1  # the session is still usable
    job = jobs.get(job_id)
    assert job.state is JobState.DISCARDED
    assert job.last_error is not None and job.last_error.type.endswith("Boom")


def test_inline_raises_the_task_error_from_an_enqueue_without_a_session(jobs: JobQueue) -> None:
    @jobs.task(max_attempts=3)
    def explode() -> None:
        raise Boom("task failed")

    with testing.inline(jobs), pytest.raises(Boom):
        explode.enqueue()
    [job] = jobs.list_jobs()
    assert job.state is JobState.RETRYABLE and job.attempt == 1


def test_inline_with_raise_errors_false_only_records_the_failure(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    @jobs.task(max_attempts=1)
    def explode() -> None:
        raise Boom("task failed")

    with testing.inline(jobs, raise_errors=False), session_factory() as db:
        job_id = explode.enqueue(db)
        db.commit()
    assert jobs.get(job_id).state is JobState.DISCARDED


def test_inline_raises_a_child_jobs_error_to_the_outermost_commit(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    @jobs.task(max_attempts=1)
    def child() -> None:
        raise Boom("child failed")

    @jobs.task
    def parent(session: Session) -> None:
        child.enqueue(session)

    with testing.inline(jobs), session_factory() as db:
        parent_id = parent.enqueue(db)
        with pytest.raises(Boom, match="child failed"):
            db.commit()
    assert jobs.get(parent_id).state is JobState.COMPLETED  # its completion is not undone
    assert [job.state for job in testing.enqueued(jobs, child, states=JobState)] == [
        JobState.DISCARDED
    ]


def test_reset_deletes_jobs_in_every_state(jobs: JobQueue) -> None:
    @jobs.task
    def note(n: int) -> None:
        pass

    note.enqueue(n=1)
    note.configure(delay=3600).enqueue(n=2)
    jobs.drain()
    assert {job.state for job in testing.enqueued(jobs, states=JobState)} == {
        JobState.COMPLETED,
        JobState.SCHEDULED,
    }
    assert testing.reset(jobs) == 2
    assert testing.enqueued(jobs, states=JobState) == []


def test_capture_scopes_enqueued_and_drain_to_the_jobs_of_its_block(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    @jobs.task
    def note(n: int) -> None:
        pass

    @jobs.task
    def fan_out(session: Session) -> None:
        note.enqueue(session, n=3)

    earlier = note.enqueue(n=0)
    with testing.capture(jobs) as captured:
        with session_factory() as db:
            first = note.enqueue(db, n=1)
            db.commit()
            note.enqueue(db, n=2)
            db.rollback()  # never committed: not captured
            spread = fan_out.enqueue(db)
            db.commit()
        assert [job.id for job in testing.enqueued(captured)] == [first, spread]
        testing.assert_enqueued(captured, note, n=1)
        testing.refute_enqueued(captured, note, n=0)
        result = captured.drain()  # its child, enqueued while the block is open, too
    assert len(result.completed) == 3 and earlier not in result.completed
    assert jobs.get(earlier).state is JobState.AVAILABLE
    testing.assert_enqueued(captured, note, n=3, states=[JobState.COMPLETED])


def test_no_worker_keeps_the_lifespan_worker_off_after_the_app_was_imported(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    ran_in: dict[int, int] = {}
    app, lifespan = _app(jobs, session_factory, ran_in)  # built like an imported app
    with testing.no_worker(jobs), TestClient(app) as client:
        assert lifespan.worker is None
        job_id = client.post("/notes/1").json()["job_id"]
    assert jobs.get(job_id).state is JobState.AVAILABLE
    with TestClient(app):  # the block is over: the worker starts again
        assert lifespan.worker is not None


def test_a_lifespans_enabled_flag_is_read_at_startup(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    app, lifespan = _app(jobs, session_factory, {})
    lifespan.enabled = False
    with TestClient(app):
        assert lifespan.worker is None
    lifespan.enabled = True
    with testing.no_worker(lifespan), TestClient(app):  # the same, for one lifespan
        assert lifespan.worker is None
    with TestClient(app):
        assert lifespan.worker is not None


def test_no_worker_also_stops_the_queues_own_lifespan(jobs: JobQueue) -> None:
    started: list[int] = []
    app = FastAPI(lifespan=jobs.lifespan)
    jobs.events.subscribe(events.WORKER_STARTED, lambda _n, _d: started.append(1))
    with testing.no_worker(jobs), TestClient(app):
        pass
    assert started == []


def test_inline_child_error_in_a_worker_run_job_does_not_fail_its_parent(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    @jobs.task(max_attempts=1)
    def child() -> None:
        raise Boom("child failed")

    @jobs.task(max_attempts=1)
    def parent(session: Session) -> None:
        child.enqueue(session)

    parent_id = parent.enqueue()  # before inline mode: a worker runs it
    log = EventLog(jobs, events.JOB_COMPLETED, events.JOB_LEASE_LOST, events.JOB_DISCARDED)
    with testing.inline(jobs), jobs.worker(concurrency=1, poll_interval=0.01):
        log.wait_for(events.JOB_COMPLETED)
        log.wait_for(events.JOB_DISCARDED)
    # The child ran inline in the worker's thread; its error did not reach the parent's commit.
    assert [e["job"].id for e in log.matching(events.JOB_COMPLETED)] == [parent_id]
    assert log.count(events.JOB_LEASE_LOST) == 0
    [child_job] = testing.enqueued(jobs, child, states=JobState)
    assert child_job.state is JobState.DISCARDED and child_job.attempt == 1
