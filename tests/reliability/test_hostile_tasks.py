"""Hostile tasks in a real worker process: BaseException, SystemExit, KeyboardInterrupt, a
task that never returns, a non-JSON result, a task that closes, commits or rolls back its
own session. The worker survives, keeps running other jobs, and each hostile job ends in
the state docs/reliability.md documents, with its error recorded."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import select

from sqljobs import JobState
from tests.conftest import Counter
from tests.helpers import eventually
from tests.reliability.harness import Workers, finished, record, tally, wait_registered

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

WORKER_ARGS = ("--concurrency", "4", "--lease", "2", "--poll-interval", "0.05", "--grace", "2")

#: task -> (final state, type of the recorded error or None, does its write survive?)
EXPECTED: dict[str, tuple[JobState, str | None, bool]] = {
    "raise_base_exception": (JobState.DISCARDED, "tests.reliability.app.Explosion", False),
    "raise_system_exit": (JobState.DISCARDED, "SystemExit", False),
    "raise_keyboard_interrupt": (JobState.DISCARDED, "KeyboardInterrupt", False),
    "never_return": (JobState.DISCARDED, "sqljobs.exceptions.JobTimeout", False),
    "non_json_result": (JobState.DISCARDED, "sqljobs.exceptions.SerializationError", False),
    "close_own_session": (JobState.COMPLETED, None, False),
    # Its write before the commit stays; the attempt is discarded (issue 12, case 18b).
    "commit_own_session": (JobState.DISCARDED, "sqljobs.exceptions.JobSessionMisused", True),
    "rollback_own_session": (JobState.COMPLETED, None, False),
}


def hostile_counter(app: Any) -> int:
    with app.SessionLocal() as session:
        return int(session.scalar(select(Counter.n).where(Counter.id == app.HOSTILE_COUNTER)))


def test_hostile_tasks_leave_the_worker_running(
    dialect: str, rel_app: Any, workers: Workers
) -> None:
    jobs = rel_app.jobs
    worker = workers.start(*WORKER_ARGS)
    wait_registered(rel_app, worker)
    started = time.monotonic()
    ids = {name: jobs.registry[name].enqueue() for name in EXPECTED}
    # The worker goes on with ordinary jobs meanwhile (one thread is left for good in
    # never_return; the watchdog starts a new executor in its place).
    normal = 300
    jobs.enqueue_many(None, [rel_app.apply.prepare(key=i) for i in range(normal)])
    eventually(lambda: finished(rel_app), timeout=120, interval=0.1)
    elapsed = time.monotonic() - started
    assert worker.alive(), worker.output()[-3000:]
    # ...and still takes new work after all of that.
    late = rel_app.apply.enqueue(key=normal)
    eventually(lambda: jobs.get(late).state is JobState.COMPLETED, timeout=60)
    workers.stop_all([worker])

    outcomes = {}
    for name, job_id in ids.items():
        job = jobs.get(job_id)
        outcomes[name] = (job.state.value, [e.type for e in job.errors])
    writes_kept = hostile_counter(rel_app)
    result = tally(rel_app, normal + 1)
    record(
        "hostile-tasks",
        dialect,
        seconds=round(elapsed, 1),
        outcomes=outcomes,
        hostile_writes_kept=writes_kept,
        tally=result,
    )
    for name, (state, error_type, _kept) in EXPECTED.items():
        job = jobs.get(ids[name])
        assert job.state is state, (name, outcomes[name])
        if error_type is None:
            assert not job.errors, (name, outcomes[name])
        else:
            assert [e.type for e in job.errors] == [error_type], (name, outcomes[name])
            assert job.errors[0].message or error_type == "KeyboardInterrupt"
    assert writes_kept == sum(kept for _s, _e, kept in EXPECTED.values())
    assert result.lost == 0 and result.duplicated == 0
    completed_hostile = sum(s is JobState.COMPLETED for s, _e, _k in EXPECTED.values())
    assert result.completed == normal + 1 + completed_hostile
    assert result.counter == normal + 1
