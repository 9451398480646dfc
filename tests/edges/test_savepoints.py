"""Issue 12, case 15: jobs enqueued around savepoints are reported (events, inline runs) for
exactly the jobs that commit."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from sqljobs import JobQueue, events, testing
from sqljobs.jobs import JobState
from tests.helpers import EventLog


def _reported(log: EventLog) -> list[int]:
    """The ``n`` of each job the enqueued events reported (SQLite reuses rolled-back ids)."""
    return [row.args["n"] for data in log.matching(events.JOB_ENQUEUED) for row in data["new_jobs"]]


def _stored(jobs: JobQueue) -> list[int]:
    return sorted(job.args["n"] for job in jobs.list_jobs(limit=1000))


def test_rolled_back_savepoint_forgets_only_its_own_jobs(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    @jobs.task
    def note(n: int) -> None: ...

    log = EventLog(jobs, events.JOB_ENQUEUED)
    with session_factory() as db:
        note.enqueue(db, n=1)
        savepoint = db.begin_nested()
        note.enqueue(db, n=2)
        savepoint.rollback()
        note.enqueue(db, n=3)
        db.commit()
    assert _reported(log) == [1, 3]
    assert _stored(jobs) == [1, 3]


def test_nested_savepoints_report_what_survives(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    @jobs.task
    def note(n: int) -> None: ...

    log = EventLog(jobs, events.JOB_ENQUEUED)
    with session_factory() as db:
        note.enqueue(db, n=1)
        outer = db.begin_nested()
        note.enqueue(db, n=2)
        inner = db.begin_nested()
        note.enqueue(db, n=3)
        inner.commit()  # released: c now belongs to outer
        dropped = db.begin_nested()
        note.enqueue(db, n=4)
        dropped.rollback()
        outer.commit()  # released: b and c belong to the transaction
        assert _reported(log) == []  # nothing is reported before the real commit
        gone = db.begin_nested()
        note.enqueue(db, n=5)
        deeper = db.begin_nested()
        note.enqueue(db, n=6)
        deeper.commit()
        gone.rollback()  # takes e and f (released into it) along
        note.enqueue(db, n=7)
        db.commit()
    assert _reported(log) == [1, 2, 3, 7]
    assert _stored(jobs) == [1, 2, 3, 7]


def test_released_savepoint_jobs_are_forgotten_when_the_transaction_rolls_back(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    @jobs.task
    def note(n: int) -> None: ...

    log = EventLog(jobs, events.JOB_ENQUEUED)
    with session_factory() as db:
        note.enqueue(db, n=1)
        with db.begin_nested():
            note.enqueue(db, n=2)
        db.rollback()
        note.enqueue(db, n=3)
        db.commit()
    assert _reported(log) == [3]
    assert _stored(jobs) == [3]


def test_inline_mode_runs_only_jobs_outside_a_rolled_back_savepoint(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    ran: list[Any] = []

    @jobs.task
    def note(n: int) -> None:
        ran.append(n)

    with testing.inline(jobs), session_factory() as db:
        note.enqueue(db, n=1)
        savepoint = db.begin_nested()
        note.enqueue(db, n=2)
        savepoint.rollback()
        with db.begin_nested():
            note.enqueue(db, n=3)
        db.commit()
    assert sorted(ran) == [1, 3]
    assert sorted(job.args["n"] for job in jobs.list_jobs(state=JobState.COMPLETED)) == [1, 3]
