"""Rows written straight into the job table (another service, a hand-made INSERT, a bad
migration): malformed arguments are discarded at once with the reason; the worker process
goes on with the good jobs."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import pytest
from sqlalchemy import JSON, insert, text
from sqlalchemy.exc import DBAPIError

from sqljobs import JobState
from sqljobs.schema import jobs_table
from tests.helpers import eventually
from tests.reliability.harness import (
    Workers,
    apply_counters,
    finished,
    record,
    tally,
    wait_registered,
)

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

WORKER_ARGS = ("--concurrency", "4", "--lease", "2", "--poll-interval", "0.05")

#: label -> (task, stored args, max_attempts, expected error type). An unknown task, a
#: missing or an unknown argument are no longer here: a worker leaves a task it does not know
#: unclaimed, and puts back arguments that do not fit its version of the task (issue 12,
#: case 4: tests/edges_time/test_rolling_deploys.py).
BAD_ROWS: dict[str, tuple[str, Any, int, str]] = {
    "args not an object": ("apply", [1, 2], 5, "sqljobs.exceptions.InvalidArguments"),
    "args a string": ("apply", "key=1", 5, "sqljobs.exceptions.InvalidArguments"),
    "args null (JSON)": ("apply", None, 5, "sqljobs.exceptions.InvalidArguments"),
    "wrong type": ("apply", {"key": "one"}, 5, "sqljobs.exceptions.InvalidArguments"),
    "bool for int": ("apply", {"key": True}, 5, "sqljobs.exceptions.InvalidArguments"),
    "injected name": ("apply", {"key": 1, "session": 1}, 5, "sqljobs.exceptions.InvalidArguments"),
    "deeply nested": ("apply", {"key": [[[[[[1]]]]]]}, 5, "sqljobs.exceptions.InvalidArguments"),
}


def raw_row(task: str, args: Any, max_attempts: int) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    return {
        "queue": "default",
        "task": task,
        "args": args,
        "state": JobState.AVAILABLE.value,
        "priority": 0,
        "attempt": 0,
        "max_attempts": max_attempts,
        "run_at": now,
        "created_at": now,
    }


def test_bad_rows_are_discarded_with_their_error_and_the_worker_goes_on(
    dialect: str, rel_app: Any, workers: Workers
) -> None:
    ids: dict[str, int] = {}
    with rel_app.engine.begin() as conn:
        for label, (task, args, attempts, _error) in BAD_ROWS.items():
            row = raw_row(task, args, attempts)
            if args is None:  # JSON null, not SQL NULL
                row["args"] = JSON.NULL
            ids[label] = conn.execute(insert(jobs_table).values(row)).inserted_primary_key[0]
    good = 200
    rel_app.jobs.enqueue_many(None, [rel_app.apply.prepare(key=i) for i in range(good)])
    worker = workers.start(*WORKER_ARGS)
    wait_registered(rel_app, worker)
    started = time.monotonic()
    eventually(lambda: finished(rel_app), timeout=120, interval=0.1)
    elapsed = time.monotonic() - started
    assert worker.alive(), worker.output()[-3000:]
    workers.stop_all([worker])

    outcomes = {}
    for label, (_task, _args, attempts, error) in BAD_ROWS.items():
        job = rel_app.jobs.get(ids[label])
        outcomes[label] = (job.state.value, job.attempt, [e.type for e in job.errors])
        assert job.state is JobState.DISCARDED, (label, outcomes[label])
        expected_attempts = attempts if error.endswith("TaskNotRegistered") else 1
        assert [e.type for e in job.errors] == [error] * expected_attempts, outcomes[label]
        assert all(e.message for e in job.errors)
    result = tally(rel_app, good)
    record("bad-rows", dialect, seconds=round(elapsed, 1), outcomes=outcomes, tally=result)
    assert result.completed == good and result.counter == good
    assert result.lost == 0 and result.duplicated == 0


@pytest.mark.needs("stores_unchecked_json")
def test_a_row_whose_args_are_not_json_at_all_does_not_stop_the_worker(
    dialect: str, rel_app: Any, workers: Workers
) -> None:
    """SQLite stores JSON as text and checks nothing: a row can hold ``{broken``.
    (PostgreSQL's json type and MariaDB's JSON check refuse such a row outright; see
    test_the_server_refuses_non_json_args.)"""
    with rel_app.engine.begin() as conn:
        job_id = conn.execute(
            insert(jobs_table).values(raw_row("apply", {"key": 1}, 5))
        ).inserted_primary_key[0]
        conn.execute(
            text("UPDATE sqljobs_jobs SET args = '{broken' WHERE id = :id"), {"id": job_id}
        )
    good = 50
    rel_app.jobs.enqueue_many(None, [rel_app.apply.prepare(key=i) for i in range(good)])
    worker = workers.start(*WORKER_ARGS)
    wait_registered(rel_app, worker)
    eventually(lambda: apply_counters(rel_app) == good, timeout=60, interval=0.1)
    broken = eventually(lambda: (job := rel_app.jobs.get(job_id)).state.is_finished and job)
    assert worker.alive(), worker.output()[-3000:]
    workers.stop_all([worker])
    assert broken.state is JobState.DISCARDED and broken.attempt == 1
    assert [(e.type, e.message) for e in broken.errors] == [
        (
            "sqljobs.exceptions.InvalidArguments",
            "apply: stored arguments must be a JSON object, got UndecodableJSON",
        )
    ]
    assert broken.args == "{broken"  # the stored text is kept for the operator


@pytest.mark.needs("server_checks_json")
def test_the_server_refuses_non_json_args(dialect: str, rel_app: Any) -> None:
    """PostgreSQL's json type and MariaDB's JSON check refuse a row whose args are not JSON,
    so such a row never reaches a worker there."""
    with rel_app.engine.begin() as conn:
        job_id = conn.execute(
            insert(jobs_table).values(raw_row("apply", {"key": 1}, 5))
        ).inserted_primary_key[0]
    with pytest.raises(DBAPIError, match=r"(?i)json|constraint"):
        with rel_app.engine.begin() as conn:
            conn.execute(
                text("UPDATE sqljobs_jobs SET args = '{broken' WHERE id = :id"), {"id": job_id}
            )
    assert rel_app.jobs.get(job_id).args == {"key": 1}
