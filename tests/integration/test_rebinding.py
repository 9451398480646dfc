"""Issue 18, items 1 and 2 (sync): a queue built at import time pointed at a test database with
``jobs.rebind``, schema errors naming the database the statement ran in, and the testing
helpers running in the test's own transaction (the rollback-per-test pattern)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import ConfigurationError, JobQueue, JobState, SchemaNotReady, testing
from sqljobs.schema import jobs_table
from tests.conftest import Counter
from tests.helpers import increment, rolled_back_transaction, sqlite_savepoints


@pytest.fixture
def import_time_queue(tmp_path: Path) -> Iterator[JobQueue]:
    """The app's queue as its module builds it: on the app's own database (here a SQLite file
    without any table), before the test's conftest swaps the engine."""
    engine = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    queue = JobQueue(sessionmaker(engine))
    yield queue
    queue.close()
    engine.dispose()


def counter_rows(engine: Engine) -> list[tuple[int, int]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(select(Counter.id, Counter.n))]  # type: ignore[misc]


def job_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(jobs_table)).scalar_one())


def test_rebind_points_enqueue_drain_and_helpers_at_the_test_database(
    import_time_queue: JobQueue, session_factory: sessionmaker[Session], engine: Engine
) -> None:
    jobs = import_time_queue

    @jobs.task(name="bump")
    def bump(session: Session) -> None:
        increment(session)

    with session_factory.begin() as db:
        db.add(Counter(id=1, n=0))
    with jobs.rebind(session_factory):
        jobs.create_schema()
        job_id = bump.enqueue()  # no session: the queue's own transaction, on the test database
        assert testing.assert_enqueued(jobs, bump).id == job_id
        assert jobs.drain().completed == [job_id]
        assert jobs.get(job_id).state is JobState.COMPLETED
    assert counter_rows(engine) == [(1, 1)]
    with pytest.raises(SchemaNotReady, match=r"app\.db"):  # back on the app's database
        jobs.get(job_id)


def test_rebind_is_refused_while_a_worker_of_the_queue_runs(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    with (
        jobs.worker(concurrency=1, poll_interval=0.05),
        pytest.raises(ConfigurationError, match=r"stop it .* before jobs.rebind"),
    ):
        jobs.rebind(session_factory)


def test_rebind_needs_an_async_factory_for_async_tasks_that_take_a_session(
    tmp_path: Path,
) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

    async_engine = create_async_engine("sqlite+aiosqlite://")
    jobs = JobQueue(
        sessionmaker(create_engine("sqlite://")),
        async_session_factory=async_sessionmaker(async_engine),
    )

    @jobs.task(name="notify")
    async def notify(session: AsyncSession) -> None: ...

    with pytest.raises(ConfigurationError, match=r"notify take a session: pass .*async_session"):
        jobs.rebind(sessionmaker(create_engine(f"sqlite:///{tmp_path / 'x.db'}")))


def test_inline_on_a_second_queue_given_the_apps_tasks_is_refused_with_what_to_do(
    import_time_queue: JobQueue, jobs: JobQueue
) -> None:
    @import_time_queue.task(name="welcome")
    def welcome(user_id: int) -> None: ...

    jobs.registry.add(welcome)  # a test queue on the test database, given the app's task
    with (
        pytest.raises(ConfigurationError, match=r"welcome were registered with another queue"),
        testing.inline(jobs),
    ):
        welcome.enqueue(user_id=1)
    with pytest.raises(ConfigurationError, match=r"jobs\.rebind\(TestSessionLocal\)"):
        testing.inline(jobs).__enter__()


@pytest.mark.dialects("postgresql", reason="a server URL with a password (trust auth ignores it)")
def test_a_session_on_a_database_without_the_tables_names_that_database_unmasked_never(
    import_time_queue: JobQueue, db_url: str, engine: Engine
) -> None:
    @import_time_queue.task(name="welcome")
    def welcome(user_id: int) -> None: ...

    url = make_url(db_url).set(password="s3cret-pw")
    other = create_engine(url)  # the test database: no sqljobs tables (and not the queue's)
    try:
        with Session(other) as db, pytest.raises(SchemaNotReady) as missing:
            welcome.enqueue(db, user_id=1)
    finally:
        other.dispose()
    message = str(missing.value)
    assert f"tables are missing in {url.render_as_string(hide_password=True)}" in message
    assert "s3cret-pw" not in message and "app.db" not in message


def test_a_missing_table_seen_through_the_tests_connection_names_its_database(
    jobs: JobQueue, engine: Engine, db_url: str
) -> None:
    jobs.drop_schema()
    with rolled_back_transaction(engine) as db, pytest.raises(SchemaNotReady) as missing:
        testing.enqueued(jobs, using=db)
    where = make_url(db_url).render_as_string(hide_password=True)
    assert f"the sqljobs tables are missing in {where}" in str(missing.value)


@pytest.fixture
def savepoint_engine(engine: Engine) -> Engine:
    sqlite_savepoints(engine)
    return engine


def test_helpers_and_drain_given_the_tests_session_work_in_its_transaction_and_roll_back(
    jobs: JobQueue, savepoint_engine: Engine
) -> None:
    @jobs.task(name="bump")
    def bump(session: Session) -> None:
        increment(session)

    with rolled_back_transaction(savepoint_engine) as db:
        db.add(Counter(id=1, n=0))
        db.commit()  # the app's commit: releases a savepoint of the outer transaction
        job_id = bump.enqueue(db)
        db.commit()
        assert testing.enqueued(jobs, bump) == []  # outside the test's transaction: not there
        assert testing.assert_enqueued(jobs, bump, using=db).id == job_id
        assert jobs.drain(using=db).completed == [job_id]
        testing.refute_enqueued(jobs, bump, using=db)
        assert testing.assert_enqueued(jobs, bump, states=["completed"], using=db).id == job_id
        assert db.execute(select(Counter.n)).scalar_one() == 1
    assert counter_rows(savepoint_engine) == [] and job_rows(savepoint_engine) == 0


def test_inline_runs_the_jobs_of_a_session_joining_the_tests_transaction_there(
    jobs: JobQueue, savepoint_engine: Engine
) -> None:
    @jobs.task(name="bump")
    def bump(session: Session) -> None:
        increment(session)

    with rolled_back_transaction(savepoint_engine) as db, testing.inline(jobs):
        db.add(Counter(id=1, n=0))
        job_id = bump.enqueue(db)
        db.commit()  # runs the job here, in a savepoint of the test's transaction
        assert jobs.drain(using=db).total == 0
        job = testing.assert_enqueued(jobs, bump, states=JobState, using=db)
        assert (job.id, job.state, job.attempt, job.errors) == (job_id, "completed", 1, ())
        assert db.execute(select(Counter.n)).scalar_one() == 1
    assert counter_rows(savepoint_engine) == [] and job_rows(savepoint_engine) == 0


def test_inline_using_the_tests_connection_runs_sessionless_enqueues_in_it(
    jobs: JobQueue, savepoint_engine: Engine
) -> None:
    ran: list[int] = []

    @jobs.task(name="note")
    def note(n: int) -> None:
        ran.append(n)

    with rolled_back_transaction(savepoint_engine) as db, testing.inline(jobs, db.connection()):
        job_id = note.enqueue(n=7)
        job = testing.assert_enqueued(jobs, note, states=["completed"], using=db)
    assert (ran, job.id) == ([7], job_id)
    assert job_rows(savepoint_engine) == 0


def test_captured_jobs_drain_in_the_tests_transaction(
    jobs: JobQueue, savepoint_engine: Engine
) -> None:
    seen: list[Any] = []

    @jobs.task(name="note")
    def note(n: int) -> None:
        seen.append(n)

    with rolled_back_transaction(savepoint_engine) as db, testing.capture(jobs) as captured:
        note.enqueue(db, n=1)
        db.commit()
        assert captured.drain(using=db).completed == captured.ids
    assert seen == [1] and job_rows(savepoint_engine) == 0


def test_a_sync_helper_given_an_async_session_says_to_await_the_async_one(
    offline_jobs: JobQueue,
) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession

    with pytest.raises(ConfigurationError, match=r"await testing\.aenqueued"):
        testing.enqueued(offline_jobs, using=AsyncSession())  # type: ignore[arg-type]


def test_a_jobqueue_given_an_async_sessionmaker_points_to_aio_job_queue() -> None:
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    factory = async_sessionmaker(create_async_engine("sqlite+aiosqlite://"))
    with pytest.raises(ConfigurationError, match=r"use jobs = sqljobs\.aio\.job_queue\("):
        JobQueue(factory)  # type: ignore[arg-type]


@pytest.mark.dialects("postgresql", reason="poolers and LISTEN are PostgreSQL's")
def test_a_rebound_queue_keeps_its_pooler_setting_and_gets_its_listen_plan_back(
    db_url: str,
) -> None:
    home, test_engine = create_engine(db_url), create_engine(db_url)
    direct = create_engine(db_url)
    jobs = JobQueue(sessionmaker(home), pooler="transaction", listen=direct)
    try:
        home_plan = jobs.store.listening
        assert (home_plan.mode, home_plan.engine) == ("direct", direct)
        with jobs.rebind(sessionmaker(test_engine)):
            # The pooler still applies (no prepared statements on the new engine); a listen=
            # Engine names the first database, so the test database's workers poll.
            assert jobs.store.listening.mode == "off"
            with test_engine.connect() as conn:
                assert conn.connection.driver_connection.prepare_threshold is None  # type: ignore[union-attr]
        assert jobs.store.engine is home and jobs.store.listening is home_plan
    finally:
        jobs.close()
        for engine in (home, test_engine, direct):
            engine.dispose()
