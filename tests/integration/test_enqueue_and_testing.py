"""Enqueue semantics as an app sees them, and the sqljobs.testing helpers."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import JobNotFound, JobQueue, JobState, SerializationError, testing
from tests.conftest import Record
from tests.helpers import add_counters, counter_total, increment


def test_a_job_enqueued_in_a_rolled_back_transaction_never_runs(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory)

    @jobs.task
    def bump(session: Session) -> None:
        increment(session)

    with session_factory() as db:
        db.add(Record(id=1))
        job_id = bump.enqueue(db)
        assert isinstance(job_id, int)  # the id is known before the commit
        db.rollback()
    with pytest.raises(JobNotFound):
        jobs.get(job_id)
    assert jobs.drain().total == 0
    with jobs.worker(concurrency=1, poll_interval=0.02) as worker:
        threading.Event().wait(0.3)
        assert worker.stats.claimed == 0
    assert counter_total(session_factory) == 0


def test_a_job_enqueued_in_a_committed_transaction_commits_with_it(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    @jobs.task
    def mark(session: Session, record_id: int) -> None:
        record = session.get(Record, record_id)
        assert record is not None
        record.status = "done"

    with session_factory() as db:
        db.add(Record(id=7))
        job_id = mark.enqueue(db, record_id=7)
        db.commit()
    assert jobs.drain().completed == [job_id]
    with session_factory() as db:
        assert db.get(Record, 7).status == "done"  # type: ignore[union-attr]


def test_bad_arguments_are_refused_before_anything_is_written(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    @jobs.task
    def refresh(session: Session, record_id: int) -> None:
        pass

    with session_factory() as db:
        record = Record(id=3)
        db.add(record)
        db.flush()
        with pytest.raises(SerializationError, match=r"primary key.*session.get\(Record"):
            refresh.enqueue(db, record_id=record)  # type: ignore[arg-type]
        with pytest.raises(SerializationError, match="never shares the caller's Session"):
            refresh.enqueue(record_id=db)  # type: ignore[arg-type]
        db.commit()
    assert jobs.list_jobs() == []


def test_enqueue_many_delay_priority_and_queue(jobs: JobQueue) -> None:
    @jobs.task(queue="mail")
    def send(to: str) -> str:
        return to

    ids = jobs.enqueue_many(None, [send.prepare(to=f"u{i}") for i in range(50)])
    later = send.configure(delay=3600).enqueue(to="later")
    urgent = send.configure(priority=-10, queue="urgent").enqueue(to="urgent")
    assert len(ids) == 50 and jobs.get(later).state is JobState.SCHEDULED
    assert jobs.get(urgent).queue == "urgent"
    result = jobs.drain(queues=["mail"])
    assert result.completed == ids
    assert jobs.get(later).state is JobState.SCHEDULED
    assert jobs.drain(include_scheduled=True, queues=["mail"]).completed == [later]
    assert jobs.drain().completed == [urgent]


def test_options_given_to_enqueue_as_keywords_apply_as_configure_s(jobs: JobQueue) -> None:
    """The keywords enqueue took before ``configure`` still work (type checkers refuse them:
    they cannot sit beside the task's own, checked, keyword arguments)."""

    @jobs.task
    def send(to: str) -> str:
        return to

    keyed = send.enqueue(to="x", delay=3600, priority=3, queue="q")  # type: ignore[call-arg]
    configured = send.configure(delay=3600, priority=3, queue="q").enqueue(to="x")
    first, second = jobs.get(keyed), jobs.get(configured)
    assert (first.state, first.priority, first.queue, first.args) == (
        JobState.SCHEDULED,
        3,
        "q",
        {"to": "x"},
    )
    assert (second.state, second.priority, second.queue, second.args) == (
        first.state,
        first.priority,
        first.queue,
        first.args,
    )


def test_inline_mode_runs_after_the_callers_commit(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    ran: list[int] = []

    @jobs.task
    def note(n: int) -> None:
        ran.append(n)

    with testing.inline(jobs):
        note.enqueue(n=1)  # no session: runs at once
        assert ran == [1]
        with session_factory() as db:
            job_id = note.enqueue(db, n=2)
            assert ran == [1]  # not before the commit
            db.commit()
            assert ran == [1, 2]
            assert jobs.get(job_id).state is JobState.COMPLETED
            note.enqueue(db, n=3)
            db.rollback()
        assert ran == [1, 2]
    note.enqueue(n=4)
    assert ran == [1, 2]


def test_testing_assertions(jobs: JobQueue) -> None:
    @jobs.task
    def welcome(email: str) -> None:
        pass

    welcome.enqueue(email="a@example.com")
    job = testing.assert_enqueued(jobs, welcome, email="a@example.com")
    testing.refute_enqueued(jobs, welcome, email="b@example.com")
    with pytest.raises(AssertionError, match="expected one waiting"):
        testing.assert_enqueued(jobs, welcome, email="b@example.com")
    assert jobs.drain().completed == [job.id]
    testing.refute_enqueued(jobs, welcome)


def test_wait_returns_the_finished_job(jobs: JobQueue) -> None:
    @jobs.task
    def double(n: int) -> int:
        return n * 2

    job_id = double.enqueue(n=21)
    with jobs.worker(concurrency=1, poll_interval=0.02):
        job = jobs.wait(job_id, timeout=20)
    assert job.state is JobState.COMPLETED and job.result == 42


def test_drain_follows_jobs_enqueued_into_new_queues(jobs: JobQueue) -> None:
    ran: list[str] = []

    @jobs.task(queue="second")
    def second() -> None:
        ran.append("second")

    @jobs.task
    def first() -> None:
        ran.append("first")
        second.configure(queue="elsewhere").enqueue()

    first.enqueue()
    assert len(jobs.drain().completed) == 2
    assert ran == ["first", "second"]
