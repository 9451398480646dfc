"""Issue 12, case 3a: an enqueue whose commit answer is lost on the wire is never blindly
repeated. The statement ran; only its answer was lost (a proxy between sqljobs and the server
drops it and cuts the connection). A plain enqueue raises OutcomeUnknown and leaves the one
job the database committed; an enqueue of unique jobs is repeated, which is safe, and returns
the job the lost commit stored."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from sqljobs import JobQueue, JobState, OutcomeUnknown, Unique, events
from sqljobs.schema import jobs_table
from tests.helpers import eventually
from tests.lossy_proxy import LossyProxy

pytestmark = pytest.mark.needs("network_connection")

#: Where a single session-less enqueue's outcome is decided: PostgreSQL runs it as one
#: autocommit statement, MariaDB in a transaction ended by COMMIT.
INSERT = b"INSERT INTO sqljobs_jobs"
OUTCOME_STATEMENT = {"postgresql": (INSERT,), "mariadb": (INSERT, b"COMMIT")}
#: The commit of an enqueue's transaction (not the commits of a connection's set-up).
COMMIT_OF_INSERT = (INSERT, b"COMMIT")


@pytest.fixture
def proxy(db_url: str) -> Iterator[LossyProxy]:
    url = make_url(db_url)
    with LossyProxy(url.host or "127.0.0.1", url.port or 0) as lossy:
        yield lossy


@pytest.fixture
def proxied_jobs(db_url: str, engine: Engine, proxy: LossyProxy) -> Iterator[JobQueue]:
    JobQueue(sessionmaker(engine)).create_schema()
    through_proxy = create_engine(make_url(db_url).set(host="127.0.0.1", port=proxy.port))
    queue = JobQueue(sessionmaker(through_proxy))
    yield queue
    queue.close()
    through_proxy.dispose()


def stored_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(jobs_table.c.id, jobs_table.c.args)).all())


def test_a_lost_enqueue_answer_raises_outcome_unknown_and_stores_the_job_once(
    dialect: str, engine: Engine, proxied_jobs: JobQueue, proxy: LossyProxy
) -> None:
    @proxied_jobs.task
    def send_email(to: str) -> None: ...

    proxy.lose_answer_to(*OUTCOME_STATEMENT[dialect])
    with pytest.raises(OutcomeUnknown, match="may or may not have committed"):
        send_email.enqueue(to="ada@example.com")
    assert proxy.lost.is_set()
    assert [row.args for row in stored_rows(engine)] == [{"to": "ada@example.com"}]


def test_a_lost_answer_to_a_batch_enqueue_raises_outcome_unknown_and_stores_it_once(
    engine: Engine, proxied_jobs: JobQueue, proxy: LossyProxy
) -> None:
    @proxied_jobs.task
    def refresh(n: int) -> None: ...

    proxy.lose_answer_to(*COMMIT_OF_INSERT)
    with pytest.raises(OutcomeUnknown, match="may or may not have committed"):
        proxied_jobs.enqueue_many(None, [refresh.prepare(n=n) for n in range(5)])
    assert proxy.lost.is_set()
    assert sorted(row.args["n"] for row in stored_rows(engine)) == [0, 1, 2, 3, 4]


def test_a_lost_answer_to_a_unique_enqueue_is_repeated_and_finds_the_stored_job(
    engine: Engine, proxied_jobs: JobQueue, proxy: LossyProxy
) -> None:
    @proxied_jobs.task(unique=Unique(by_args=True))
    def rebuild(report: str) -> None: ...

    proxy.lose_answer_to(*COMMIT_OF_INSERT)
    job_id = rebuild.enqueue(report="monthly")
    assert proxy.lost.is_set()
    assert [(row.id, row.args) for row in stored_rows(engine)] == [(job_id, {"report": "monthly"})]


def test_an_enqueue_after_a_lost_answer_uses_a_new_connection(
    dialect: str, engine: Engine, proxied_jobs: JobQueue, proxy: LossyProxy
) -> None:
    """The cut connection is discarded from the pool: the next enqueue simply works."""

    @proxied_jobs.task
    def send_email(to: str) -> None: ...

    proxy.lose_answer_to(*OUTCOME_STATEMENT[dialect])
    with pytest.raises(OutcomeUnknown, match="may or may not have committed"):
        send_email.enqueue(to="first@example.com")
    second = send_email.enqueue(to="second@example.com")
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(jobs_table)).scalar_one()
    assert count == 2
    assert proxied_jobs.get(second).args == {"to": "second@example.com"}


#: A claim's statement (a release or rescue gives the attempt back: "attempt - 1").
CLAIM = b"attempt=(sqljobs_jobs.attempt +"
CLAIM_OUTCOME = {"postgresql": (CLAIM,), "mariadb": (CLAIM, b"COMMIT")}


def test_a_lost_answer_to_a_claim_that_started_its_job_is_given_back_by_the_worker(
    dialect: str, db_url: str, engine: Engine, proxy: LossyProxy
) -> None:
    """An idle worker's claim records the job's start; its answer is lost. The worker gives
    the job back at once (a NeverStarted note, the attempt not counted) and runs it: long
    before its 30 s lease would let rescue find it, which would count that attempt and, with
    max_attempts=1, discard the job unrun."""
    queue = JobQueue(sessionmaker(engine))
    queue.create_schema()
    # Statements sent as text every time (no server-side prepare), so the proxy sees them.
    options = {"connect_args": {"prepare_threshold": None}} if dialect == "postgresql" else {}
    through_proxy = create_engine(
        make_url(db_url).set(host="127.0.0.1", port=proxy.port), **options
    )
    proxied = JobQueue(sessionmaker(through_proxy))
    ran: list[int] = []

    @proxied.task(max_attempts=1)
    def once(n: int) -> int:
        ran.append(n)
        return n

    idle = threading.Event()
    unsubscribe = proxied.events.subscribe(events.WORKER_IDLE, lambda name, data: idle.set())
    try:
        with proxied.worker(concurrency=1, poll_interval=0.2, lease=30):
            assert idle.wait(20)
            proxy.lose_answer_to(*CLAIM_OUTCOME[dialect])
            job_id = once.enqueue(n=7)
            eventually(lambda: queue.get(job_id).state.is_finished, timeout=20)
    finally:
        unsubscribe()
        proxied.close()
        through_proxy.dispose()
    assert proxy.lost.is_set()
    job = queue.get(job_id)
    assert (job.state, job.attempt, job.result) == (JobState.COMPLETED, 1, 7)
    assert [e.type for e in job.errors] == ["NeverStarted"]
    assert ran == [7]
