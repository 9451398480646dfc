"""What sqljobs sends per job: drain() stages once per run, not per job; the precompiled
start and completion send the dialect's own SQL through SQLAlchemy's connection, so cursor
events (tracing, statement logs) still see them, and store every storable value exactly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import bindparam, event, select
from sqlalchemy.orm import Session

from sqljobs import JobQueue, JobState, Retry
from sqljobs.schema import jobs_table
from sqljobs.store import _statements
from sqljobs.store._precompiled import Precompiled
from tests.conftest import Counter
from tests.helpers import increment


@contextmanager
def sent_statements(jobs: JobQueue) -> Iterator[list[str]]:
    """The SQL strings the queue's engine sends while inside the block."""
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    engine = jobs.store.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_drain_stages_at_its_start_and_when_the_queue_ran_dry_not_per_job(
    jobs: JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    @jobs.task
    def noop(i: int) -> None:
        pass

    for i in range(6):
        noop.enqueue(i=i)
    stages: list[object] = []
    stage = jobs.store.stage

    def counted_stage(**kw: Any) -> int:
        stages.append(kw)
        return stage(**kw)

    monkeypatch.setattr(jobs.store, "stage", counted_stage)

    assert len(jobs.drain().completed) == 6
    assert len(stages) == 2  # before the first claim, and once no job was available


def test_drain_still_runs_a_retry_that_came_due_while_it_ran(jobs: JobQueue) -> None:
    attempts: list[int] = []

    @jobs.task
    def flaky() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise Retry(delay=0)

    @jobs.task
    def other(i: int) -> None:
        pass

    job_id = flaky.enqueue()
    for i in range(3):
        other.enqueue(i=i)
    result = jobs.drain()
    assert job_id in result.failed and job_id in result.completed
    assert jobs.get(job_id).state is JobState.COMPLETED and jobs.get(job_id).attempt == 2


@pytest.mark.parametrize(
    "value",
    [None, 0, -(2**62), 1.5, "é😀 text with % and %(name)s", [1, [2, {"a": None}]], {"k": "v"}],
)
def test_a_completed_jobs_result_is_stored_exactly_by_the_precompiled_completion(
    jobs: JobQueue, value: Any
) -> None:
    @jobs.task
    def give(session: Session) -> Any:
        increment(session)
        return value

    job_id = give.enqueue()
    jobs.drain()
    job = jobs.get(job_id)
    assert job.state is JobState.COMPLETED and job.result == value


def test_the_precompiled_start_and_completion_go_through_cursor_events(jobs: JobQueue) -> None:
    """Tracing and statement logs hook SQLAlchemy's cursor events: they see both."""

    @jobs.task
    def write(session: Session) -> str:
        increment(session)
        return "done"

    write.enqueue()
    with sent_statements(jobs) as sent:
        jobs.drain()
    dialect = jobs.store.engine.dialect
    for statement in (_statements.MARK_STARTED, _statements.COMPLETE):
        assert str(statement.compile(dialect=dialect)) in sent


def test_a_statement_with_expanding_parameters_is_refused_with_a_reason(jobs: JobQueue) -> None:
    statement = select(jobs_table.c.id).where(
        jobs_table.c.id.in_(bindparam("p_ids", expanding=True))
    )
    with pytest.raises(ValueError, match="expanding parameters"):
        with jobs.store.engine.connect() as conn:
            Precompiled(statement).execute(conn, {"p_ids": [1]})


def test_an_enqueue_in_a_session_flushes_its_pending_orm_writes_first_unless_told_not_to(
    jobs: JobQueue,
) -> None:
    """As ``Session.execute`` does (the precompiled enqueue on PostgreSQL keeps that), so that
    the job's row and the request's rows go to the database in the order they were made."""

    @jobs.task
    def notify(counter_id: int) -> None:
        pass

    def counters_in_transaction(session: Session) -> int:
        # Read through the connection: a Session query would autoflush by itself.
        rows = session.connection().execute(select(Counter.id)).all()
        return len(rows)

    with Session(jobs.store.engine) as session:
        session.add(Counter(id=41, n=0))
        notify.enqueue(session, counter_id=41)
        assert counters_in_transaction(session) == 1
        with session.no_autoflush:
            session.add(Counter(id=42, n=0))
            notify.enqueue(session, counter_id=42)
            assert counters_in_transaction(session) == 1
        session.rollback()
