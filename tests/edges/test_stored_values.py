"""Issue 12 cases 2 and 17: one rule set for stored values (arguments, results, progress).

A value every database stores and gives back unchanged is accepted; anything else is refused
with the same SerializationError on SQLite, PostgreSQL and MariaDB before anything is written.
A completion the database refuses anyway fails only its own job.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import JobQueue, JobState, SerializationError
from sqljobs.jobs import Job
from sqljobs.schema import jobs_table
from sqljobs.worker._completer import Completer
from sqljobs.worker._held import HeldJobs
from sqljobs.worker._outcomes import Completed
from sqljobs.worker._stats import WorkerStats
from tests.helpers import add_counters, counter_total, increment

LEASE = timedelta(minutes=1)


def nested(depth: int) -> Any:
    """``depth`` lists, one inside the other, around a 1."""
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def run_like_a_worker(jobs: JobQueue, claimed: list[Job]) -> tuple[WorkerStats, list[int]]:
    """Run the claimed jobs as a worker's executors do, handing every session-less
    completion to one completer, which then stores what it got in one batch. Returns the
    stats and the size of each batch the completer wrote."""
    held = HeldJobs(on_freed=lambda: None)
    stats = WorkerStats()
    store_errors: list[Exception] = []
    completer = Completer(
        runner=jobs.runner,
        held=held,
        stats=stats,
        on_store_error=lambda _jobs, exc: store_errors.append(exc),
    )
    batches: list[int] = []
    complete_many = jobs.store.complete_many

    def recording(done: Sequence[tuple[Job, Any]]) -> set[int]:
        batches.append(len(done))
        return complete_many(done)

    jobs.store.complete_many = recording  # type: ignore[method-assign]
    held.add(claimed, lambda _: None)
    for job in claimed:
        assert jobs.runner.start(job)
        outcome, duration = jobs.runner.execute(job)
        if isinstance(outcome, Completed) and not outcome.persisted:
            completer.submit(job, outcome, duration)
        else:
            stats.count(jobs.runner.persist(job, outcome, duration))
    completer.start()
    completer.finish(timeout=60)
    assert store_errors == []
    return stats, batches


def test_a_bad_result_fails_only_its_own_job_in_a_batch(jobs: JobQueue) -> None:
    runs: list[int] = []

    @jobs.task(name="answer")
    def answer(n: int) -> Any:
        runs.append(n)
        return nested(40) if n == 3 else {"n": n}

    ids = jobs.enqueue_many(None, [answer.prepare(n=n) for n in range(6)])
    claimed = jobs.store.claim(worker_id="w1", queues=["default"], limit=6, lease=LEASE)
    stats, batches = run_like_a_worker(jobs, claimed)

    assert batches == [5]  # the five good completions went in one transaction
    assert (stats.completed, stats.failed, stats.discarded) == (5, 1, 0)
    assert sorted(runs) == list(range(6))  # every task ran exactly once
    done = {n: jobs.get(job_id) for n, job_id in enumerate(ids)}
    for n, job in done.items():
        if n == 3:
            continue
        assert (job.state, job.attempt, job.result, job.errors) == (
            JobState.COMPLETED,
            1,
            {"n": n},
            (),
        )
    bad = done[3]
    assert (bad.state, bad.attempt, bad.result) == (JobState.RETRYABLE, 1, None)
    assert bad.last_error is not None
    assert bad.last_error.type == "sqljobs.exceptions.SerializationError"
    assert "the task's return value cannot be stored: result[0][0]" in bad.last_error.message
    assert "more than 30 levels deep" in bad.last_error.message


_REFUSE_TRIGGER = {
    "sqlite": [
        "CREATE TRIGGER sqljobs_test_refuse BEFORE UPDATE ON sqljobs_jobs "
        "WHEN NEW.id = {id} AND NEW.state = 'completed' "
        "BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END"
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION sqljobs_test_refuse() RETURNS trigger AS $$ BEGIN "
        "IF NEW.id = {id} AND NEW.state = 'completed' THEN "
        "RAISE EXCEPTION 'refused by a test trigger'; END IF; RETURN NEW; END $$ "
        "LANGUAGE plpgsql",
        "CREATE TRIGGER sqljobs_test_refuse BEFORE UPDATE ON sqljobs_jobs "
        "FOR EACH ROW EXECUTE FUNCTION sqljobs_test_refuse()",
    ],
    "mariadb": [
        "CREATE TRIGGER sqljobs_test_refuse BEFORE UPDATE ON sqljobs_jobs FOR EACH ROW BEGIN "
        "IF NEW.id = {id} AND NEW.state = 'completed' THEN "
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by a test trigger'; END IF; END"
    ],
}


def refuse_completion_of(engine: Engine, dialect: str, job_id: int) -> None:
    """Make the database itself refuse to complete one job (whatever its result)."""
    with engine.begin() as conn:
        for statement in _REFUSE_TRIGGER[dialect]:
            conn.exec_driver_sql(statement.replace("{id}", str(job_id)))


def test_a_batch_the_database_refuses_falls_back_to_per_job_writes(
    jobs: JobQueue, engine: Engine, dialect: str
) -> None:
    @jobs.task(name="answer")
    def answer(n: int) -> dict[str, int]:
        return {"n": n}

    ids = jobs.enqueue_many(None, [answer.prepare(n=n) for n in range(5)])
    refuse_completion_of(engine, dialect, ids[2])
    claimed = jobs.store.claim(worker_id="w1", queues=["default"], limit=5, lease=LEASE)
    stats, batches = run_like_a_worker(jobs, claimed)

    assert batches[0] == 5  # tried as one batch first, then job by job
    assert (stats.completed, stats.failed, stats.lease_lost) == (4, 1, 0)
    done = [jobs.get(job_id) for job_id in ids]
    assert [(job.state, job.attempt) for job in done] == [
        (JobState.COMPLETED, 1),
        (JobState.COMPLETED, 1),
        (JobState.RETRYABLE, 1),
        (JobState.COMPLETED, 1),
        (JobState.COMPLETED, 1),
    ]
    refused = done[2].last_error
    assert refused is not None
    assert refused.type == "sqljobs.exceptions.StoreError"
    assert "refused by a test trigger" in refused.message  # the database's own error


def test_a_sessioned_jobs_bad_result_fails_with_serialization_error(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory)

    @jobs.task(name="write_then_answer")
    def write_then_answer(session: Session) -> Any:
        increment(session)
        return {"deep": nested(35)}

    job_id = write_then_answer.enqueue()
    jobs.drain()
    job = jobs.get(job_id)
    assert (job.state, job.attempt, job.result) == (JobState.RETRYABLE, 1, None)
    assert job.last_error is not None
    assert job.last_error.type == "sqljobs.exceptions.SerializationError"
    assert "result['deep'][0]" in job.last_error.message
    assert counter_total(session_factory) == 0  # the task's writes were rolled back with it


ODD_VALUES = {
    "depth 31": (nested(31), "args['payload']" + "[0]" * 30, "more than 30 levels deep"),
    "depth 32": (nested(32), "args['payload']" + "[0]" * 30, "more than 30 levels deep"),
    "depth 33": (nested(33), "args['payload']" + "[0]" * 30, "more than 30 levels deep"),
    "depth 5000": (nested(5000), "args['payload']" + "[0]" * 30, "more than 30 levels deep"),
    "depth 100000": (nested(100_000), "args['payload']" + "[0]" * 30, "levels deep"),
    "NUL": ({"text": ["a\x00b"]}, "args['payload']['text'][0]", "NUL character"),
    "NUL in a key": ({"a\x00": 1}, "args['payload'] has a key 'a\\x00'", "NUL character"),
    "lone surrogate": (["ok", "x\udc80"], "args['payload'][1]", "lone surrogate"),
    "surrogate key": ({"\ud800": 1}, "args['payload'] has a key", "lone surrogate"),
    "huge int": ([10**5000], "args['payload'][0]", "pass it as a string"),
    "NaN": ({"x": float("nan")}, "args['payload']['x']", "JSON cannot hold"),
}


@pytest.mark.parametrize("case", list(ODD_VALUES))
def test_odd_arguments_get_the_same_serialization_error_on_every_database(
    jobs: JobQueue, case: str
) -> None:
    @jobs.task(name="keep")
    def keep(payload: Any = None) -> None:
        return None

    value, path, reason = ODD_VALUES[case]
    with pytest.raises(SerializationError) as single:
        keep.enqueue(payload=value)
    with pytest.raises(SerializationError) as bulk:
        jobs.enqueue_many(None, [keep.prepare(payload=1), keep.prepare(payload=value)])
    for refused in (single.value, bulk.value):
        assert str(refused).startswith(path), str(refused)
        assert reason in str(refused)
    assert sum(jobs.counts().values()) == 0  # nothing was written


def test_values_at_the_limits_round_trip_on_every_database(jobs: JobQueue) -> None:
    edge = {"deep": nested(29), "text": "é \U0001f600 \t\n", "big": 10**600, "tiny": 5e-324}

    @jobs.task(name="echo")
    def echo(payload: Any) -> Any:
        return payload

    job_id = echo.enqueue(payload=nested(30))
    other_id = echo.enqueue(payload=edge)
    assert jobs.get(job_id).args == {"payload": nested(30)}
    jobs.drain()
    assert jobs.get(job_id).result == nested(30)
    assert jobs.get(other_id).result == edge


@pytest.mark.dialects("sqlite", "postgresql", reason="MariaDB's own JSON check refuses such a row")
def test_a_stored_row_beyond_the_rules_still_runs(jobs: JobQueue, engine: Engine) -> None:
    """Rows written before these rules (or by other code) run as they are: the rules decide
    what sqljobs writes, not what it reads back."""

    @jobs.task(name="echo")
    def echo(payload: Any) -> str:
        return "ran"

    job_id = echo.enqueue(payload=1)
    odd = {"payload": {"deep": nested(35), "text": "a\x00b"}}
    with engine.begin() as conn:
        conn.execute(update(jobs_table).where(jobs_table.c.id == job_id).values(args=odd))
    jobs.drain()
    job = jobs.get(job_id)
    assert (job.state, job.attempt, job.result, job.args) == (JobState.COMPLETED, 1, "ran", odd)


def test_an_exception_whose_message_is_not_storable_text_is_recorded(jobs: JobQueue) -> None:
    @jobs.task(name="complain", max_attempts=1)
    def complain() -> None:
        raise ValueError("bad byte \udcff and \x00 in the message")

    job_id = complain.enqueue()
    jobs.drain()
    job = jobs.get(job_id)
    assert (job.state, job.attempt) == (JobState.DISCARDED, 1)
    assert job.last_error is not None
    assert job.last_error.message == "bad byte \\udcff and \\x00 in the message"
