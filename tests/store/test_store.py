"""Conformance suite for the job store: the same behaviour on SQLite, PostgreSQL, MariaDB."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import JobContext, JobNotFound, JobQueue, JobState, SchemaNotReady
from sqljobs.jobs import JobError
from sqljobs.schema import jobs_table
from sqljobs.store import NewJob
from tests import capabilities

LEASE = timedelta(seconds=30)


def new(
    task: str = "t",
    queue: str = "default",
    priority: int = 0,
    run_at: datetime | None = None,
    max_attempts: int = 3,
) -> NewJob:
    return NewJob(
        task=task,
        args={"k": 1},
        queue=queue,
        priority=priority,
        max_attempts=max_attempts,
        run_at=run_at,
    )


def test_enqueue_returns_ids_in_order_and_stores_the_row(jobs: JobQueue) -> None:
    ids = jobs.store.enqueue(None, [new(priority=p) for p in (3, 1, 2)])
    assert ids == sorted(ids) and len(set(ids)) == 3
    job = jobs.get(ids[1])
    assert (job.task, job.args, job.priority, job.state) == ("t", {"k": 1}, 1, JobState.AVAILABLE)
    assert job.attempt == 0 and job.errors == ()
    assert job.created_at.tzinfo is timezone.utc


@pytest.mark.slow
def test_a_bulk_enqueue_larger_than_one_statement_keeps_every_row_and_the_id_order(
    jobs: JobQueue,
) -> None:
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    rows = [
        NewJob(
            task=f"task-{n % 7}",
            args={"n": n, "text": "é\"'\\ ;--", "nested": {"list": [n, None, 1.5]}},
            queue=("a", "b")[n % 2],
            priority=n % 5,
            max_attempts=1 + n % 4,
            run_at=later if n % 3 == 0 else None,
        )
        for n in range(12_000)  # more than one PostgreSQL array statement holds
    ]
    with Session(jobs.store.engine) as session:
        ids = jobs.enqueue_many(session, rows)
        session.commit()
    assert len(ids) == len(set(ids)) == len(rows) and ids == sorted(ids)
    by_id = {job.id: job for job in jobs.list_jobs(limit=len(rows))}
    for job_id, row in zip(ids, rows, strict=True):
        job = by_id[job_id]
        expected_state = JobState.SCHEDULED if row.run_at else JobState.AVAILABLE
        assert (job.task, job.args, job.queue, job.priority, job.max_attempts, job.state) == (
            row.task,
            row.args,
            row.queue,
            row.priority,
            row.max_attempts,
            expected_state,
        )
        assert job.attempt == 0 and job.errors == () and job.unique_key is None
        if row.run_at:
            assert abs(job.run_at - row.run_at) < timedelta(milliseconds=1)


def test_future_jobs_are_scheduled_and_not_claimed_early(jobs: JobQueue) -> None:
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    [job_id] = jobs.store.enqueue(None, [new(run_at=later)])
    assert jobs.get(job_id).state is JobState.SCHEDULED
    assert abs(jobs.get(job_id).run_at - later) < timedelta(milliseconds=1)
    assert jobs.store.claim(worker_id="w", queues=["default"], limit=5, lease=LEASE) == []
    assert jobs.store.stage() == 0
    assert jobs.store.stage(until=later + timedelta(seconds=1)) == 1
    claimed = jobs.store.claim(worker_id="w", queues=["default"], limit=5, lease=LEASE)
    assert [j.id for j in claimed] == [job_id]


def test_claim_order_priority_then_age_and_queue_filter(jobs: JobQueue) -> None:
    low, high, other = jobs.store.enqueue(
        None, [new(priority=5), new(priority=0), new(queue="other")]
    )
    claimed = jobs.store.claim(worker_id="w", queues=["default"], limit=10, lease=LEASE)
    assert [j.id for j in claimed] == [high, low]
    assert all(
        j.state is JobState.RUNNING and j.attempt == 1 and j.lease_owner == "w" for j in claimed
    )
    assert jobs.get(other).state is JobState.AVAILABLE


def test_concurrent_claimers_never_get_the_same_job(jobs: JobQueue, dialect: str) -> None:
    total = 300
    jobs.store.enqueue(None, [new() for _ in range(total)])
    seen: list[list[int]] = []
    barrier = threading.Barrier(6)

    def claimer(name: str) -> None:
        mine: list[int] = []
        barrier.wait()
        while True:
            batch = jobs.store.claim(worker_id=name, queues=["default"], limit=7, lease=LEASE)
            mine.extend(j.id for j in batch)
            # Under contention a claim may come back empty while others hold the rows it
            # looked at (MariaDB); only stop once nothing is left to claim.
            if not batch and not jobs.store.count_by_state().get(("default", JobState.AVAILABLE)):
                break
        seen.append(mine)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [job_id for mine in seen for job_id in mine]
    assert len(everything) == total and len(set(everything)) == total
    if capabilities.has("concurrent_writers", dialect):
        # Claimers overlap on server databases. (SQLite serialises writers and its busy
        # handler backs off for up to 100 ms, so one thread may legitimately take everything.)
        assert sum(1 for mine in seen if mine) > 1


def test_complete_only_while_holding_the_lease(jobs: JobQueue, engine: object) -> None:
    [job_id] = jobs.store.enqueue(None, [new()])
    [job] = jobs.store.claim(worker_id="w", queues=["default"], limit=1, lease=LEASE)
    jobs.cancel(job_id)  # an operator takes the job away
    assert jobs.store.complete_many([(job, {"ok": True})]) == set()
    assert jobs.get(job_id).state is JobState.CANCELLED

    [other_id] = jobs.store.enqueue(None, [new()])
    [other] = jobs.store.claim(worker_id="w", queues=["default"], limit=1, lease=LEASE)
    assert jobs.store.complete_many([(other, {"ok": True})]) == {other_id}
    done = jobs.get(other_id)
    assert done.state is JobState.COMPLETED and done.result == {"ok": True}
    assert done.finished_at is not None and done.lease_owner is None


def _error(attempt: int) -> JobError:
    return JobError(
        attempt=attempt,
        at=datetime.now(timezone.utc),
        type="ValueError",
        message=f"failure {attempt}",
        traceback="Traceback ...",
    )


def test_fail_schedules_a_retry_then_discards_keeping_every_error(jobs: JobQueue) -> None:
    [job_id] = jobs.store.enqueue(None, [new(max_attempts=2)])
    [job] = jobs.store.claim(worker_id="w", queues=["default"], limit=1, lease=LEASE)
    retry_at = datetime.now(timezone.utc) - timedelta(seconds=1)
    assert jobs.store.fail(job, _error(1), retry_at=retry_at)
    assert jobs.get(job_id).state is JobState.RETRYABLE
    assert jobs.store.stage() == 1
    [job] = jobs.store.claim(worker_id="w", queues=["default"], limit=1, lease=LEASE)
    assert job.attempt == 2
    assert jobs.store.fail(job, _error(2), retry_at=None)
    final = jobs.get(job_id)
    assert final.state is JobState.DISCARDED and final.finished_at is not None
    assert [e.message for e in final.errors] == ["failure 1", "failure 2"]
    assert final.errors[0].type == "ValueError" and final.errors[1].attempt == 2


def test_rescue_requeues_expired_leases_and_counts_the_attempt(jobs: JobQueue) -> None:
    first, last = jobs.store.enqueue(None, [new(max_attempts=3), new(max_attempts=1)])
    claimed = jobs.store.claim(
        worker_id="dead", queues=["default"], limit=2, lease=timedelta(milliseconds=1)
    )
    assert len(claimed) == 2
    assert all(jobs.store.mark_started(job) for job in claimed)  # they started, then died
    alive = jobs.store.enqueue(None, [new()])
    jobs.store.claim(worker_id="alive", queues=["default"], limit=1, lease=LEASE)
    threading.Event().wait(0.05)
    assert sorted(jobs.store.rescue()) == [first, last]
    rescued = jobs.get(first)
    assert rescued.state is JobState.RETRYABLE and rescued.attempt == 1
    assert rescued.errors[-1].type == "LeaseExpired" and "dead" in rescued.errors[-1].message
    assert jobs.get(last).state is JobState.DISCARDED  # it had used its only attempt
    assert jobs.get(alive[0]).state is JobState.RUNNING
    jobs.store.stage()
    [again] = jobs.store.claim(worker_id="alive", queues=["default"], limit=5, lease=LEASE)
    assert again.id == first and again.attempt == 2


def test_heartbeat_extends_only_the_owners_leases(jobs: JobQueue) -> None:
    jobs.store.enqueue(None, [new(), new()])
    mine, _theirs = jobs.store.claim(worker_id="me", queues=["default"], limit=2, lease=LEASE)
    jobs.store.heartbeat(worker_id="someone-else", job_ids=[mine.id], lease=timedelta(hours=1))
    assert jobs.get(mine.id).lease_expires_at == mine.lease_expires_at
    jobs.store.heartbeat(worker_id="me", job_ids=[mine.id], lease=timedelta(hours=1))
    renewed = jobs.get(mine.id).lease_expires_at
    assert renewed is not None and mine.lease_expires_at is not None
    assert renewed - mine.lease_expires_at > timedelta(minutes=50)


def test_release_gives_jobs_back_without_counting_the_attempt(jobs: JobQueue) -> None:
    jobs.store.enqueue(None, [new()])
    [job] = jobs.store.claim(worker_id="w", queues=["default"], limit=1, lease=LEASE)
    assert jobs.store.release([job]) == 1
    back = jobs.get(job.id)
    assert back.state is JobState.AVAILABLE and back.attempt == 0 and back.lease_owner is None


def test_snooze_reschedules_without_counting(jobs: JobQueue) -> None:
    jobs.store.enqueue(None, [new()])
    [job] = jobs.store.claim(worker_id="w", queues=["default"], limit=1, lease=LEASE)
    later = datetime.now(timezone.utc) + timedelta(minutes=1)
    assert jobs.store.snooze(job, later)
    snoozed = jobs.get(job.id)
    assert snoozed.state is JobState.SCHEDULED and snoozed.attempt == 0


def test_retry_and_cancel_by_an_operator(jobs: JobQueue) -> None:
    [job_id] = jobs.store.enqueue(None, [new(max_attempts=1)])
    [job] = jobs.store.claim(worker_id="w", queues=["default"], limit=1, lease=LEASE)
    jobs.store.fail(job, _error(1), retry_at=None)
    again = jobs.retry(job_id)
    assert again.state is JobState.AVAILABLE and again.max_attempts == 2
    cancelled = jobs.cancel(job_id)
    assert cancelled.state is JobState.CANCELLED
    assert jobs.store.claim(worker_id="w", queues=["default"], limit=1, lease=LEASE) == []
    with pytest.raises(JobNotFound):
        jobs.get(10**9)


def test_prune_deletes_old_finished_jobs_only(jobs: JobQueue) -> None:
    done, waiting = jobs.store.enqueue(None, [new(), new(queue="later")])
    [job] = jobs.store.claim(worker_id="w", queues=["default"], limit=1, lease=LEASE)
    jobs.store.complete_many([(job, None)])
    assert jobs.prune(older_than=timedelta(hours=1)) == 0
    assert jobs.prune(older_than=0) == 1
    with pytest.raises(JobNotFound):
        jobs.get(done)
    assert jobs.get(waiting).state is JobState.AVAILABLE
    with pytest.raises(ValueError, match="only finished jobs"):
        jobs.prune(older_than=0, states=["available"])


def test_list_and_count(jobs: JobQueue) -> None:
    jobs.store.enqueue(None, [new(task="a"), new(task="b"), new(task="b", queue="q2")])
    assert [j.task for j in jobs.list_jobs(task="b")] == ["b", "b"]
    assert len(jobs.list_jobs(queue="q2")) == 1
    assert len(jobs.list_jobs(state="available", limit=2)) == 2
    assert jobs.counts() == {("default", JobState.AVAILABLE): 2, ("q2", JobState.AVAILABLE): 1}


def test_enqueue_in_a_rolled_back_session_leaves_nothing(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        [job_id] = jobs.store.enqueue(session, [new()])
        session.rollback()
    with pytest.raises(JobNotFound):
        jobs.get(job_id)


def test_missing_tables_give_a_clear_error(jobs: JobQueue) -> None:
    jobs.drop_schema()
    with pytest.raises(SchemaNotReady) as missing:
        jobs.get(1)
    message = str(missing.value)
    where = jobs.engine.url.render_as_string(hide_password=True)
    assert f"the sqljobs tables are missing in {where}" in message
    for way in ("jobs.create_schema()", "`sqljobs create-schema module:jobs`", "alembic upgrade"):
        assert way in message
    assert "``" not in message


@pytest.mark.dialects("postgresql", reason="a server URL with a password (trust auth ignores it)")
def test_missing_tables_name_the_database_without_its_password(db_url: str) -> None:
    url = make_url(db_url).set(password="s3cret-pw")
    engine = create_engine(url)  # trust auth: the password is not checked
    try:
        # This process's database may hold tables another test left; this one needs none.
        JobQueue(sessionmaker(engine)).drop_schema()
        with pytest.raises(SchemaNotReady) as missing:
            JobQueue(sessionmaker(engine)).get(1)
    finally:
        engine.dispose()
    assert "s3cret-pw" not in str(missing.value)
    assert f"/{url.database}:" in str(missing.value)


@pytest.mark.needs("file_database")
def test_a_relative_sqlite_path_read_from_another_directory_is_named_and_warned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    engine = create_engine("sqlite:///app.db")
    try:
        with pytest.raises(SchemaNotReady) as missing:
            JobQueue(sessionmaker(engine)).store.check_ready()
    finally:
        engine.dispose()
    assert f"(the file {elsewhere / 'app.db'}: a relative path" in str(missing.value)
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert f"the SQLite database file {elsewhere / 'app.db'} does not exist" in warning
    assert str(elsewhere) in warning.split("current directory")[1]


@pytest.mark.needs("file_database")
def test_sqlite_runs_in_wal_mode(jobs: JobQueue) -> None:
    with jobs.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


@pytest.mark.needs("row_locks_skip_locked")
def test_staging_and_pruning_do_not_wait_for_a_running_jobs_row(jobs: JobQueue) -> None:
    # A running job's row is locked by its own transaction while the job completes. On InnoDB
    # a range-scanning UPDATE or DELETE locks the index entry of that row before waiting for
    # the row, which is the other half of a deadlock with the completion (it rolled jobs back).
    jobs.store.enqueue(None, [new() for _ in range(300)])
    later = datetime.now(timezone.utc) + timedelta(minutes=5)
    [scheduled] = jobs.store.enqueue(None, [new(queue="later", run_at=later)])
    claimed = jobs.store.claim(worker_id="w", queues=["default"], limit=2, lease=LEASE)
    jobs.store.complete_many([(claimed[0], None)])
    running = claimed[1]

    def run_in_thread(work: Any) -> list[Any]:
        outcome: list[Any] = []
        thread = threading.Thread(target=lambda: outcome.append(work()), daemon=True)
        thread.start()
        thread.join(timeout=10)
        return outcome

    with jobs.store.engine.connect() as holder:
        holder.execute(
            text("UPDATE sqljobs_jobs SET progress = 0.5 WHERE id = :id"), {"id": running.id}
        )
        staged = run_in_thread(lambda: jobs.store.stage(until=later + timedelta(seconds=1)))
        pruned = run_in_thread(lambda: jobs.prune(older_than=0))
        holder.rollback()
    assert staged == [1] and pruned == [1]
    assert jobs.get(scheduled).state is JobState.AVAILABLE


@pytest.mark.dialects("mariadb", reason="MySQL-family isolation set per transaction")
def test_bookkeeping_transactions_run_read_committed_without_changing_the_session(
    jobs: JobQueue,
) -> None:
    """The store's own transactions run at READ COMMITTED (no gap locks), set for each
    transaction alone: the pooled connection's session level, which the app's own sessions
    use, stays the server's default."""

    def levels(conn: Any) -> tuple[str, str]:
        conn.execute(text("SELECT count(*) FROM sqljobs_jobs")).scalar_one()  # starts it
        current = conn.execute(
            text(
                "SELECT trx_isolation_level FROM information_schema.innodb_trx "
                "WHERE trx_mysql_thread_id = CONNECTION_ID()"
            )
        ).scalar_one()
        session = conn.execute(text("SELECT @@session.tx_isolation")).scalar_one()
        return str(current), str(session)

    assert jobs.store.run(levels) == ("READ COMMITTED", "REPEATABLE-READ")
    with jobs.engine.connect() as conn:
        assert conn.execute(text("SELECT @@session.tx_isolation")).scalar_one() == (
            "REPEATABLE-READ"
        )


def test_tables_of_an_older_version_get_a_migration_message(jobs: JobQueue, engine: Any) -> None:
    """An install whose job table predates the per-key columns: enqueue and claim say how
    to add them, naming the missing column."""
    [flow_index] = [i for i in jobs_table.indexes if i.name == "ix_sqljobs_jobs_flow"]
    flow_index.drop(engine)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE sqljobs_jobs DROP COLUMN flow_key"))

    @jobs.task
    def plain() -> None:
        pass

    with pytest.raises(SchemaNotReady, match=r"flow_key.*create_schema"):
        plain.enqueue()
    with pytest.raises(SchemaNotReady, match=r"flow_key.*create_schema"):
        jobs.store.claim(worker_id="w", queues=["default"], limit=1, lease=timedelta(seconds=5))
    jobs.create_schema()  # adds the column and its index to the existing table
    indexes = {index["name"] for index in inspect(engine).get_indexes("sqljobs_jobs")}
    assert "ix_sqljobs_jobs_flow" in indexes
    job_id = plain.enqueue()
    assert jobs.drain().completed == [job_id]


def test_create_schema_adds_the_trace_context_column_and_the_logs_table_to_an_older_install(
    jobs: JobQueue, engine: Any
) -> None:
    """An install from before tracing and per-job logs: ``create_schema()`` adds the nullable
    ``trace_context`` column and the ``sqljobs_job_logs`` table; existing rows keep NULL."""
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE sqljobs_job_logs"))
        conn.execute(text("ALTER TABLE sqljobs_jobs DROP COLUMN trace_context"))

    @jobs.task
    def noted(ctx: JobContext) -> None:
        ctx.logger.info("noted")

    with pytest.raises(SchemaNotReady, match=r"trace_context.*create_schema"):
        noted.enqueue()
    jobs.create_schema()
    assert "trace_context" in {c["name"] for c in inspect(engine).get_columns("sqljobs_jobs")}
    job_id = noted.enqueue()
    assert jobs.drain().completed == [job_id]
    assert jobs.get(job_id).trace_context is None
    assert [line.message for line in jobs.logs(job_id)] == ["noted"]
