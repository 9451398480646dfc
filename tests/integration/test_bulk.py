"""Bulk operations (issue 15): retry, cancel or delete every job matching a filter, with a
dry-run count, in batches that re-check the filter on the rows they lock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import update

from sqljobs import JobQueue, JobState, Unique, events, schema
from sqljobs.store import JobFilters
from tests.helpers import EventLog


class Boom(Exception):
    pass


def _tasks(jobs: JobQueue) -> Any:
    @jobs.task(name="fails", max_attempts=1)
    def fails(kind: str = "value", n: int = 0) -> None:
        if kind == "boom":
            raise Boom("boom")
        raise ValueError("bad value")

    @jobs.task(name="works", queue="other")
    def works(n: int = 0) -> None:
        pass

    return fails, works


def _discard(jobs: JobQueue, task: Any, count: int, **args: Any) -> list[int]:
    ids = [task.enqueue(n=i, **args) for i in range(count)]
    jobs.drain(ids=ids)
    return ids


def _claim(jobs: JobQueue, queue: str = "default") -> int:
    (job,) = jobs.store.claim(
        worker_id="test-worker", queues=[queue], limit=1, lease=timedelta(seconds=60)
    )
    return job.id


def test_a_dry_run_counts_by_state_task_queue_error_type_and_time_and_changes_nothing(
    jobs: JobQueue,
) -> None:
    fails, works = _tasks(jobs)
    values = _discard(jobs, fails, 3)
    booms = _discard(jobs, fails, 2, kind="boom")
    waiting = [works.enqueue(n=i) for i in range(4)]

    def count(action: Any, **where: Any) -> int:
        result = jobs.bulk(action, dry_run=True, **where)
        assert result.dry_run and result.changed == [] and result.batches == 0
        return result.matched

    assert count("retry") == 5  # default: discarded and cancelled jobs
    assert count("retry", error_type="Boom") == 2
    assert count("retry", error_type="ValueError") == 3
    assert count("retry", error_type="KeyError") == 0
    assert count("retry", task="works") == 0
    assert count("cancel") == 4  # default: waiting jobs
    assert count("cancel", queue="other") == 4
    assert count("cancel", queue="default") == 0
    assert count("delete", state="discarded", task="fails") == 5
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    assert count("retry", created_before=later) == 5
    assert count("retry", created_after=later) == 0
    assert {jobs.get(i).state for i in values + booms} == {JobState.DISCARDED}
    assert {jobs.get(i).state for i in waiting} == {JobState.AVAILABLE}


def test_bulk_retry_by_error_type_runs_exactly_those_jobs_again(jobs: JobQueue) -> None:
    fails, _ = _tasks(jobs)
    values = _discard(jobs, fails, 3)
    booms = _discard(jobs, fails, 3, kind="boom")
    log = EventLog(jobs, events.JOB_RETRIED)

    result = jobs.bulk("retry", error_type="Boom", batch_size=2)

    assert sorted(result.changed) == booms and result.matched == 3 and result.batches == 2
    assert result.skipped == {}
    for job_id in booms:
        job = jobs.get(job_id)
        assert job.state is JobState.AVAILABLE and job.max_attempts == 2
        assert job.finished_at is None
    assert {jobs.get(i).state for i in values} == {JobState.DISCARDED}
    assert sorted(e["job"].id for _, e in log.seen) == booms


def test_bulk_cancel_leaves_running_jobs_alone_unless_the_filter_names_running(
    jobs: JobQueue,
) -> None:
    _, works = _tasks(jobs)
    ids = [works.enqueue(n=i) for i in range(3)]
    running = _claim(jobs, "other")

    first = jobs.bulk("cancel", queue="other")

    assert sorted(first.changed) == sorted(set(ids) - {running})
    assert jobs.get(running).state is JobState.RUNNING
    second = jobs.bulk("cancel", state=["running"])
    assert second.changed == [running]
    job = jobs.get(running)
    assert job.state is JobState.CANCELLED and job.lease_owner is None
    assert job.errors[-1].message == "cancelled by an operator while it was running"
    waiting = jobs.get(first.changed[0])
    assert waiting.errors[-1].message == "cancelled by an operator while available"


def test_bulk_delete_removes_finished_jobs_only(jobs: JobQueue) -> None:
    fails, works = _tasks(jobs)
    discarded = _discard(jobs, fails, 2)
    waiting = works.enqueue()

    result = jobs.bulk("delete")

    assert sorted(result.changed) == discarded
    assert jobs.list_jobs(limit=10) == [jobs.get(waiting)]


@pytest.mark.parametrize(
    ("action", "state", "message"),
    [
        ("retry", "running", "running jobs cannot be retried in bulk: a running job is held"),
        ("delete", "running", "running jobs cannot be deleted in bulk: a running job is held"),
        ("cancel", "completed", "completed jobs cannot be cancelled in bulk: it is finished"),
        ("retry", "sleeping", "unknown state 'sleeping'; choose from scheduled"),
    ],
)
def test_bulk_refuses_states_its_action_cannot_touch(
    offline_jobs: JobQueue, action: Any, state: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        offline_jobs.bulk(action, state=state, dry_run=True)


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"batch_size": 0}, "batch_size must be between 1 and 1000, got 0"),
        ({"task": "a\x00b"}, "task must be a string without NUL characters"),
        ({"created_after": datetime(2024, 1, 1)}, "created_after must be an aware datetime"),
        (
            {
                "created_after": datetime(2024, 1, 2, tzinfo=timezone.utc),
                "created_before": datetime(2024, 1, 1, tzinfo=timezone.utc),
            },
            "the time range is empty",
        ),
    ],
)
def test_bulk_refuses_a_bad_filter_saying_what_is_wrong(
    offline_jobs: JobQueue, where: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        offline_jobs.bulk("retry", dry_run=True, **where)


def test_a_batch_changes_only_the_candidates_that_still_match_when_it_locks_them(
    jobs: JobQueue,
) -> None:
    """The rule that makes bulk operations safe beside workers: a job claimed between the
    read of a batch's candidates and its write is not cancelled under its worker."""
    _, works = _tasks(jobs)
    ids = [works.enqueue(n=i) for i in range(3)]
    states = ["available"]
    filters = JobFilters(states=states)
    candidates = jobs.store.next_candidates(filters, states, after=0, upto=max(ids), limit=10)
    assert candidates == ids
    claimed = _claim(jobs, "other")  # a worker takes one in between

    outcome = jobs.store.apply_batch("cancel", candidates, filters, states)

    assert sorted(j.id for j in outcome.changed) == sorted(set(ids) - {claimed})
    assert jobs.get(claimed).state is JobState.RUNNING
    assert jobs.get(claimed).errors == ()


def test_bulk_retry_skips_a_unique_job_whose_key_another_live_job_holds(jobs: JobQueue) -> None:
    @jobs.task(name="digest", max_attempts=1, unique=Unique(by_args=["user_id"]))
    def digest(user_id: int, fail: bool = False) -> None:
        if fail:
            raise RuntimeError("digest failed")

    held, free = digest.enqueue(user_id=1, fail=True), digest.enqueue(user_id=2, fail=True)
    jobs.drain(ids=[held, free])
    holder = digest.enqueue(user_id=1)

    result = jobs.bulk("retry", task="digest")

    assert result.changed == [free]
    assert result.skipped == {held: f"job {holder} (available) holds its unique key"}
    assert jobs.get(held).state is JobState.DISCARDED
    assert jobs.get(free).state is JobState.AVAILABLE


def test_pause_and_resume_are_stored_per_queue(jobs: JobQueue) -> None:
    jobs.configure_queue("mail", global_limit=2)
    jobs.pause_queue("mail")
    jobs.pause_queue("reports")
    assert jobs.paused_queues() == ["mail", "reports"]
    assert jobs.store.queue_settings()["mail"]["global_limit"] == 2
    jobs.resume_queue("mail")
    assert jobs.paused_queues() == ["reports"]
    with pytest.raises(ValueError, match="a queue name is a non-empty string"):
        jobs.pause_queue("")


def test_create_schema_adds_the_paused_column_to_an_existing_install(jobs: JobQueue) -> None:
    jobs.configure_queue("mail", global_limit=3)
    with jobs.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE sqljobs_queues DROP COLUMN paused")
        conn.execute(update(schema.queues_table).values(global_limit=4))  # no paused named

    with pytest.raises(Exception, match="lack a column this version of sqljobs uses"):
        jobs.paused_queues()
    jobs.create_schema()

    assert jobs.paused_queues() == []
    assert jobs.store.queue_settings()["mail"]["global_limit"] == 4
    jobs.pause_queue("mail")
    assert jobs.paused_queues() == ["mail"]
