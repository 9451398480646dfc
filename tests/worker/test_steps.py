"""Durable steps (``ctx.step``) on each database: each step commits its writes with its result
in its own transaction; a retry replays completed steps from their stored results and runs
the first unfinished one; every misuse fails with a specific error (docs/workflows.md)."""

from __future__ import annotations

import datetime as dt
import math
import threading
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, delete, event, select
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import Backoff, JobContext, JobQueue, JobState
from sqljobs.schema import jobs_table, steps_table
from sqljobs.steps import StepState
from sqljobs.worker._outcomes import LeaseLost
from tests.conftest import Counter
from tests.helpers import add_counters, eventually, increment

#: Retries wait (so a drain() stops after one attempt) until drain(include_scheduled=True).
LATER = Backoff(base=600, jitter=0)


def counters(factory: sessionmaker[Session]) -> dict[int, int]:
    with factory() as session:
        return {row.id: row.n for row in session.scalars(select(Counter))}


def bump(session: Session, counter_id: int) -> dict[str, int]:
    increment(session, counter_id)
    return {"counter": counter_id}


def test_completed_steps_are_not_run_again_and_the_retry_resumes_at_the_first_unfinished(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory, 3)
    seen: list[tuple[int, Any]] = []

    @jobs.task(max_attempts=3, backoff=LATER)
    def flow(ctx: JobContext) -> list[int]:
        first = ctx.step("first", bump, counter_id=1)
        seen.append((ctx.attempt, first))
        second = ctx.step("second", bump, counter_id=2)
        seen.append((ctx.attempt, second))
        if ctx.attempt == 1:
            raise RuntimeError("after two steps")
        third = ctx.step("third", bump, counter_id=3)
        return [first["counter"], second["counter"], third["counter"]]

    job_id = flow.enqueue()
    jobs.drain()
    assert jobs.get(job_id).state is JobState.RETRYABLE
    assert counters(session_factory) == {1: 1, 2: 1, 3: 0}
    jobs.drain(include_scheduled=True)

    job = jobs.get(job_id)
    assert job.state is JobState.COMPLETED and job.attempt == 2 and job.result == [1, 2, 3]
    assert counters(session_factory) == {1: 1, 2: 1, 3: 1}  # each step's writes once
    first_run = [(1, {"counter": 1}), (1, {"counter": 2})]
    assert seen == [*first_run, (2, {"counter": 1}), (2, {"counter": 2})]  # replayed
    steps = jobs.steps(job_id)
    assert [(s.name, s.position, s.state, s.attempts) for s in steps] == [
        ("first", 0, StepState.COMPLETED, 1),
        ("second", 1, StepState.COMPLETED, 1),
        ("third", 2, StepState.COMPLETED, 1),
    ]
    assert all(s.duration is not None and s.finished_at is not None for s in steps)
    assert [s.result for s in steps] == [{"counter": 1}, {"counter": 2}, {"counter": 3}]


def test_a_failing_step_rolls_back_its_writes_records_its_error_and_runs_again_on_retry(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory, 1)

    def flaky(session: Session, ctx: JobContext) -> str:
        increment(session, 1)
        if ctx.attempt == 1:
            raise ValueError("card declined")
        return "charged"

    @jobs.task(max_attempts=3, backoff=LATER)
    def flow(ctx: JobContext) -> str:
        return ctx.step("charge", flaky, ctx=ctx)

    job_id = flow.enqueue()
    jobs.drain()
    assert counters(session_factory) == {1: 0}
    [failed] = jobs.steps(job_id)
    assert (failed.state, failed.attempts) == (StepState.FAILED, 1)
    assert failed.error is not None and failed.error.type == "ValueError"
    assert failed.error.message == "card declined"
    assert jobs.get(job_id).errors[-1].message == "card declined"  # the job's error too

    jobs.drain(include_scheduled=True)
    [done] = jobs.steps(job_id)
    assert (done.state, done.attempts, done.result) == (StepState.COMPLETED, 2, "charged")
    assert done.error is not None and done.error.message == "card declined"  # kept
    assert jobs.get(job_id).result == "charged" and counters(session_factory) == {1: 1}


def test_the_same_step_name_twice_in_one_job_discards_it_with_a_clear_error(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory, 1)

    @jobs.task(max_attempts=5)
    def twice(ctx: JobContext) -> None:
        for _ in range(2):
            ctx.step("bump", bump, counter_id=1)

    job_id = twice.enqueue()
    jobs.drain()
    job = jobs.get(job_id)
    assert job.state is JobState.DISCARDED and job.attempt == 1
    assert job.errors[-1].type == "sqljobs.exceptions.StepMisused"
    assert "step name 'bump' was used twice" in job.errors[-1].message
    assert "f'bump-{i}'" in job.errors[-1].message
    assert counters(session_factory) == {1: 1}  # the first call ran


def test_steps_called_in_another_order_on_retry_fail_with_step_mismatch(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory, 2)

    @jobs.task(max_attempts=3, backoff=LATER)
    def unstable(ctx: JobContext) -> None:
        order = ["a", "b"] if ctx.attempt == 1 else ["b", "a"]  # depends on the attempt
        for counter_id, name in enumerate(order, 1):
            ctx.step(name, bump, counter_id=counter_id)
        if ctx.attempt == 1:
            raise RuntimeError("retry me")

    job_id = unstable.enqueue()
    jobs.drain()
    jobs.drain(include_scheduled=True)
    job = jobs.get(job_id)
    assert job.state is JobState.DISCARDED and job.attempt == 2
    assert job.errors[-1].type == "sqljobs.exceptions.StepMismatch"
    assert job.errors[-1].message.startswith(
        f"job {job_id} ({unstable.name}) called step 'b' as step 0, but an earlier attempt "
        "stored 'b' completed as step 1"
    )
    assert counters(session_factory) == {1: 1, 2: 1}  # nothing ran twice


def test_a_step_inside_a_step_is_refused(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory, 1)

    def outer(session: Session, ctx: JobContext) -> None:
        increment(session, 1)
        ctx.step("inner", bump, counter_id=1)

    @jobs.task
    def nested(ctx: JobContext) -> None:
        ctx.step("outer", outer, ctx=ctx)

    job_id = nested.enqueue()
    jobs.drain()
    job = jobs.get(job_id)
    assert job.state is JobState.DISCARDED
    assert "step 'inner' was called inside step 'outer'" in job.errors[-1].message
    assert counters(session_factory) == {1: 0}  # the outer step's writes rolled back
    [step] = jobs.steps(job_id)
    assert step.name == "outer" and step.state is StepState.FAILED


def test_a_task_that_takes_a_session_cannot_run_steps(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory, 1)

    @jobs.task
    def mixed(session: Session, ctx: JobContext) -> None:
        increment(session, 1)
        ctx.step("bump", bump, counter_id=1)

    job_id = mixed.enqueue()
    jobs.drain()
    job = jobs.get(job_id)
    assert job.state is JobState.DISCARDED
    assert f"task {mixed.name} takes a session and called step 'bump'" in job.errors[-1].message
    assert counters(session_factory) == {1: 0} and jobs.steps(job_id) == []


def test_a_step_result_that_cannot_be_stored_fails_the_step_and_rolls_back_its_writes(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory, 1)

    def not_a_number(session: Session) -> float:
        increment(session, 1)
        return math.nan

    @jobs.task(max_attempts=1)
    def poison(ctx: JobContext) -> None:
        ctx.step("nan", not_a_number)

    job_id = poison.enqueue()
    jobs.drain()
    error = jobs.get(job_id).errors[-1]
    assert error.type == "sqljobs.exceptions.SerializationError"
    assert error.message.startswith("step 'nan''s return value cannot be stored: result")
    assert counters(session_factory) == {1: 0}
    [step] = jobs.steps(job_id)
    assert step.state is StepState.FAILED and step.result is None


class Colour:  # not JSON and without a converter
    pass


@pytest.mark.parametrize(
    ("value", "annotation"),
    [
        (uuid.UUID(int=7), uuid.UUID),
        (Decimal("10.25"), Decimal),
        (dt.datetime(2026, 3, 29, 2, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))), dt.datetime),
        ((1, "a"), None),
    ],
)
def test_step_results_follow_the_argument_rules_and_replay_as_the_first_run_returned(
    jobs: JobQueue, value: Any, annotation: Any
) -> None:
    returned: list[Any] = []

    def make() -> Any:
        return value

    if annotation is not None:
        make.__annotations__["return"] = annotation

    @jobs.task(max_attempts=2, backoff=LATER)
    def rich(ctx: JobContext) -> None:
        returned.append(ctx.step("make", make))
        if ctx.attempt == 1:
            raise RuntimeError("replay")

    rich.enqueue()
    jobs.drain()
    jobs.drain(include_scheduled=True)
    expected = value if annotation is not None else list(value)
    assert returned == [expected, expected]
    assert all(type(item) is type(expected) for item in returned)


def test_a_step_whose_commit_answer_was_lost_is_replayed_by_the_retry_not_run_again(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory, 1)
    lossy = sessionmaker(engine)
    lost: list[int] = []

    @event.listens_for(lossy, "after_commit")
    def lose_the_answer(session: Session) -> None:
        if not lost and session.info.get("sqljobs_job_session"):
            lost.append(1)
            raise ConnectionResetError("the connection dropped before COMMIT's answer")

    queue = JobQueue(lossy)
    queue.create_schema()
    got: list[Any] = []

    @queue.task(max_attempts=3, backoff=LATER)
    def flow(ctx: JobContext) -> None:
        got.append(ctx.step("bump", bump, counter_id=1))

    job_id = flow.enqueue()
    queue.drain()
    assert queue.get(job_id).errors[-1].type == "ConnectionResetError"
    queue.drain(include_scheduled=True)
    job = queue.get(job_id)
    assert job.state is JobState.COMPLETED and job.attempt == 2
    assert counters(session_factory) == {1: 1}  # it had committed: not run again
    assert got == [{"counter": 1}]  # the retry got the stored result, never ran it
    [step] = queue.steps(job_id)
    assert (step.state, step.attempts, step.error) == (StepState.COMPLETED, 1, None)
    queue.close()


def run_stale_attempt_rescued_inside_its_step(
    jobs: JobQueue, job_id: int, inside: threading.Event, go_on: threading.Event
) -> list[Any]:
    """Run the job's first attempt in a thread; while its step waits, rescue the job (its
    lease expired), then let the step finish. Returns the stale attempt's outcome."""
    [claimed] = jobs.store.claim(
        worker_id="stalled", queues=["default"], limit=1, lease=timedelta(0)
    )
    outcomes: list[Any] = []
    stale = threading.Thread(target=lambda: outcomes.append(jobs.runner.run(claimed)))
    stale.start()
    assert inside.wait(30)
    eventually(lambda: jobs.store.rescue() == [job_id], timeout=10)
    go_on.set()
    stale.join(30)
    return outcomes


@pytest.mark.needs("concurrent_writers")
def test_a_step_whose_job_was_rescued_while_it_ran_commits_none_of_its_writes(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory, 1)
    inside, go_on = threading.Event(), threading.Event()

    def slow(session: Session, ctx: JobContext) -> int:
        increment(session, 1)
        if ctx.attempt == 1:
            inside.set()
            go_on.wait(30)
        return ctx.attempt

    @jobs.task(max_attempts=3, backoff=LATER)
    def flow(ctx: JobContext) -> int:
        return ctx.step("slow", slow, ctx=ctx)

    job_id = flow.enqueue()
    outcomes = run_stale_attempt_rescued_inside_its_step(jobs, job_id, inside, go_on)
    assert [type(o) for o in outcomes] == [LeaseLost]
    assert counters(session_factory) == {1: 0}  # the stale step's writes rolled back
    [step] = jobs.steps(job_id)
    assert (step.state, step.attempts) == (StepState.RUNNING, 1)

    jobs.drain(include_scheduled=True)
    assert counters(session_factory) == {1: 1}
    job = jobs.get(job_id)
    assert job.state is JobState.COMPLETED and job.result == 2
    [step] = jobs.steps(job_id)
    assert (step.state, step.attempts, step.result) == (StepState.COMPLETED, 2, 2)


def test_a_session_less_step_whose_job_was_rescued_while_it_ran_stores_no_result(
    jobs: JobQueue,
) -> None:
    inside, go_on = threading.Event(), threading.Event()
    ran: list[int] = []

    def call_out(ctx: JobContext) -> int:  # e.g. an HTTP call: at-least-once
        ran.append(ctx.attempt)
        if ctx.attempt == 1:
            inside.set()
            go_on.wait(30)
        return ctx.attempt

    @jobs.task(max_attempts=3, backoff=LATER)
    def flow(ctx: JobContext) -> int:
        return ctx.step("call", call_out, ctx=ctx)

    job_id = flow.enqueue()
    outcomes = run_stale_attempt_rescued_inside_its_step(jobs, job_id, inside, go_on)
    assert [type(o) for o in outcomes] == [LeaseLost]
    [step] = jobs.steps(job_id)
    assert (step.state, step.result) == (StepState.RUNNING, None)
    jobs.drain(include_scheduled=True)
    assert ran == [1, 2] and jobs.get(job_id).result == 2
    [step] = jobs.steps(job_id)
    assert (step.state, step.attempts, step.result) == (StepState.COMPLETED, 2, 2)


def test_a_new_job_never_inherits_steps_left_by_a_deleted_job_with_its_id(
    jobs: JobQueue, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory, 1)

    @jobs.task
    def flow(ctx: JobContext) -> dict[str, int]:
        return ctx.step("bump", bump, counter_id=1)

    first = flow.enqueue()
    jobs.drain()
    with engine.begin() as conn:  # an older worker's prune: the job row only
        conn.execute(delete(jobs_table).where(jobs_table.c.id == first))
    second = flow.enqueue()  # SQLite gives the deleted highest id again
    jobs.drain()
    assert counters(session_factory) == {1: 2}  # the new job ran its own step
    [step] = jobs.steps(second)
    assert step.attempts == 1 and step.state is StepState.COMPLETED


def test_deleting_pruning_or_bulk_deleting_a_job_deletes_its_steps(
    jobs: JobQueue, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory, 1)

    @jobs.task
    def flow(ctx: JobContext) -> None:
        ctx.step("a", bump, counter_id=1)
        ctx.step("b", bump, counter_id=1)

    @jobs.task
    def other(ctx: JobContext) -> None:
        ctx.step("c", bump, counter_id=1)

    deleted, pruned, kept = flow.enqueue(), flow.enqueue(), flow.enqueue()
    bulk_deleted = other.enqueue()
    jobs.drain()
    jobs.store.delete_job(deleted)
    assert jobs.bulk("delete", task=other.name).changed == [bulk_deleted]
    with engine.begin() as conn:  # make one of them old enough to prune
        conn.execute(
            jobs_table.update()
            .where(jobs_table.c.id == pruned)
            .values(finished_at=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))
        )
    assert jobs.prune(older_than=timedelta(days=1)) == 1
    with engine.connect() as conn:
        left = sorted(conn.execute(select(steps_table.c.job_id, steps_table.c.name)).all())
    assert left == [(kept, "a"), (kept, "b")]
    assert bulk_deleted not in {job_id for job_id, _ in left}


def test_steps_run_inside_a_tests_transaction_and_roll_back_with_it(
    jobs: JobQueue, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory, 1)

    @jobs.task(max_attempts=2, backoff=LATER)
    def flow(ctx: JobContext) -> dict[str, int]:
        first = ctx.step("bump", bump, counter_id=1)
        if ctx.attempt == 1:
            raise RuntimeError("retry me")
        return first

    with engine.connect() as conn, conn.begin() as outer:
        test_session = Session(bind=conn, join_transaction_mode="create_savepoint")
        job_id = flow.enqueue(test_session)
        jobs.drain(using=test_session)
        jobs.drain(using=test_session, include_scheduled=True)
        seen = test_session.scalars(select(Counter.n)).one()
        states = test_session.scalars(select(steps_table.c.state)).all()
        done = test_session.scalars(select(jobs_table.c.state)).one()
        outer.rollback()
    assert (seen, states, done) == (1, ["completed"], "completed")  # inside: once
    assert counters(session_factory) == {1: 0} and jobs.steps(job_id) == []  # rolled back
