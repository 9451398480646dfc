"""sqljobs.fastapi through FastAPI's TestClient, on each database: the lifespan starts and
drains an in-process worker and composes with the app's own; the enqueuer joins the
request's transaction with ``Depends(get_db)``, ``yield`` and return-style dependencies, and
with an AsyncSession."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

import sqljobs.fastapi
from sqljobs import ConfigurationError, JobQueue, JobState, SchemaNotReady
from sqljobs.aio import async_url
from sqljobs.fastapi import AsyncEnqueuer, Enqueuer, async_enqueuer, enqueuer
from tests.conftest import Counter, Record
from tests.helpers import add_counters, counter_total, eventually, increment


class Boom(Exception):
    pass


def no_jobs(jobs: JobQueue) -> bool:
    return jobs.list_jobs() == []


@pytest.fixture
def yield_app(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> Iterator[tuple[FastAPI, Any]]:
    """The FastAPI tutorial's app: ``get_db`` yields a session, endpoints commit."""
    add_counters(session_factory)

    @jobs.task(name="bump")
    def bump(session: Session, record_id: int) -> None:
        increment(session)

    def get_db() -> Iterator[Session]:
        db = session_factory()
        try:
            yield db
        finally:
            db.close()

    app = FastAPI(lifespan=sqljobs.fastapi.lifespan(jobs, concurrency=2, poll_interval=0.05))
    # Dependencies as default values: FastAPI resolves string annotations (this module uses
    # `from __future__ import annotations`) in module globals only, not in this function.
    db_dependency, enqueue_dependency = Depends(get_db), Depends(enqueuer(get_db))

    @app.post("/records/{record_id}/refresh")
    def refresh(
        record_id: int,
        enqueue: Enqueuer = enqueue_dependency,
        db: Session = db_dependency,
        fail: str = "",
    ) -> dict[str, int]:
        assert enqueue.session is db  # one session, one transaction per request
        db.add(Record(id=record_id, status="queued"))
        job_id = enqueue(bump, record_id=record_id)
        if fail == "raise":
            raise Boom("the request fails after enqueueing")
        if fail == "http":
            raise HTTPException(409, "refused after enqueueing")
        if fail == "rollback":
            db.rollback()
            return {"job_id": job_id}
        if fail != "no-commit":
            db.commit()
        return {"job_id": job_id}

    yield app, bump


def test_a_job_enqueued_in_a_committed_request_runs_in_the_app_worker(
    yield_app: tuple[FastAPI, Any], jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    app, _bump = yield_app
    with TestClient(app) as client:
        job_id = client.post("/records/1/refresh").json()["job_id"]
        eventually(lambda: jobs.get(job_id).state is JobState.COMPLETED)
    assert counter_total(session_factory) == 1
    with session_factory() as db:
        assert db.get(Record, 1) is not None  # the record and the job committed together


@pytest.mark.parametrize(
    ("fail", "status"), [("raise", 500), ("http", 409), ("rollback", 200), ("no-commit", 200)]
)
def test_a_job_enqueued_in_a_request_that_does_not_commit_never_exists(
    yield_app: tuple[FastAPI, Any],
    jobs: JobQueue,
    session_factory: sessionmaker[Session],
    fail: str,
    status: int,
) -> None:
    app, _bump = yield_app
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/records/1/refresh", params={"fail": fail})
        assert response.status_code == status
        # A committed job afterwards runs: the worker is alive and saw everything committed.
        later = client.post("/records/2/refresh").json()["job_id"]
        eventually(lambda: jobs.get(later).state is JobState.COMPLETED)
    assert [job.args for job in jobs.list_jobs()] == [{"record_id": 2}]
    assert counter_total(session_factory) == 1
    with session_factory() as db:
        assert db.get(Record, 1) is None


def test_a_return_style_dependency_shares_the_endpoints_session_too(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory)
    opened: list[Session] = []

    @jobs.task(name="bump")
    def bump(session: Session) -> None:
        increment(session)

    def get_session() -> Session:  # no yield: the app closes it itself (here: the test)
        db = session_factory()
        opened.append(db)
        return db

    session_dependency = Depends(get_session)
    enqueue_dependency = Depends(enqueuer(get_session))
    app = FastAPI(lifespan=jobs.lifespan)

    @app.post("/bump")
    def endpoint(db: Session = session_dependency, enqueue: Enqueuer = enqueue_dependency) -> int:
        assert enqueue.session is db
        job_id = enqueue.enqueue_many(bump, [{}, {}])[1]
        db.commit()
        return job_id

    with TestClient(app) as client:
        job_id = client.post("/bump").json()
        eventually(lambda: jobs.get(job_id).state is JobState.COMPLETED)
        eventually(lambda: counter_total(session_factory) == 2)
    assert len(opened) == 1
    opened[0].close()


def test_the_lifespan_composes_with_the_apps_own_and_drains_running_jobs(
    jobs: JobQueue, session_factory: sessionmaker[Session]
) -> None:
    add_counters(session_factory)
    events: list[str] = []
    started = threading.Event()

    @jobs.task(name="slow")
    def slow(session: Session) -> None:
        started.set()
        threading.Event().wait(0.5)
        increment(session)
        events.append("job finished")

    @asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        events.append("app started")
        yield {"greeting": "hello"}
        events.append("app stopping")

    lifespan = sqljobs.fastapi.lifespan(jobs, wrap=app_lifespan, grace=20, poll_interval=0.05)
    app = FastAPI(lifespan=lifespan)

    @app.get("/state")
    def state(request: Request) -> dict[str, Any]:
        worker = lifespan.worker
        return {"greeting": request.state.greeting, "running": worker is not None}

    with TestClient(app) as client:
        assert client.get("/state").json() == {"greeting": "hello", "running": True}
        job_id = slow.enqueue()
        assert started.wait(10)
    # Shutdown waited for the running job, and stopped the worker before the app's own
    # shutdown code ran.
    assert events == ["app started", "job finished", "app stopping"]
    assert jobs.get(job_id).state is JobState.COMPLETED
    assert lifespan.worker is None
    assert jobs.store.list_workers() == []  # it deregistered on the way out


def test_a_missing_schema_fails_startup_unless_the_lifespan_creates_it(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    jobs = JobQueue(session_factory)
    with pytest.raises(SchemaNotReady), TestClient(FastAPI(lifespan=jobs.lifespan)):
        pass
    app = FastAPI(lifespan=sqljobs.fastapi.lifespan(jobs, create_schema=True))
    with TestClient(app):
        assert jobs.list_jobs() == []
    jobs.drop_schema()


def test_enabled_false_keeps_the_apps_lifespan_without_a_worker(jobs: JobQueue) -> None:
    ran: list[str] = []

    @asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[None]:
        ran.append("app")
        yield

    @jobs.task
    def noop() -> None:
        pass

    lifespan = sqljobs.fastapi.lifespan(jobs, wrap=app_lifespan, enabled=False)
    with TestClient(FastAPI(lifespan=lifespan)):
        job_id = noop.enqueue()
        assert lifespan.worker is None
    assert ran == ["app"]
    assert jobs.get(job_id).state is JobState.AVAILABLE  # left to `sqljobs worker` processes


def test_the_wrong_kind_of_session_dependency_is_refused_at_start_up() -> None:
    def get_db() -> Iterator[Session]:
        with Session() as db:
            yield db

    async def get_async_db() -> AsyncIterator[AsyncSession]:
        yield AsyncSession()

    # Where the app declares Depends(...) (module import), not at its first request.
    with pytest.raises(ConfigurationError, match=r"get_db\): that dependency is sync .*enqueuer"):
        async_enqueuer(get_db)
    with pytest.raises(ConfigurationError, match=r"is async .*use sqljobs\.fastapi\.async_enq"):
        enqueuer(get_async_db)


def test_a_dependency_giving_no_session_gets_a_clear_error() -> None:
    def get_nothing() -> str:
        return "not a session"

    app = FastAPI()
    not_a_session = Depends(enqueuer(get_nothing))

    @app.post("/not-a-session")
    def nothing(enqueue: Enqueuer = not_a_session) -> None:
        pass

    with TestClient(app) as client, pytest.raises(ConfigurationError, match="not a SQLAlchemy"):
        client.post("/not-a-session")


@pytest.fixture
def async_app(
    session_factory: sessionmaker[Session], db_url: str
) -> Iterator[tuple[FastAPI, JobQueue, Any]]:
    """An async app: AsyncSession endpoints and async tasks, one async engine for both."""
    add_counters(session_factory)
    async_engine = create_async_engine(async_url(db_url))
    AsyncSessionLocal = async_sessionmaker(async_engine, expire_on_commit=False)
    jobs = JobQueue(session_factory, async_session_factory=AsyncSessionLocal)
    jobs.create_schema()
    loops: dict[str, Any] = {}

    @jobs.task(name="async_bump")
    async def async_bump(session: AsyncSession, record_id: int) -> None:
        loops["task"] = asyncio.get_running_loop()
        await session.execute(update(Counter).where(Counter.id == 1).values(n=Counter.n + 1))

    async def get_async_db() -> AsyncIterator[AsyncSession]:
        async with AsyncSessionLocal() as db:
            yield db

    @asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await async_engine.dispose()  # its connections belong to this loop

    app = FastAPI(lifespan=sqljobs.fastapi.lifespan(jobs, wrap=app_lifespan, poll_interval=0.05))
    db_dependency = Depends(get_async_db)
    enqueue_dependency = Depends(async_enqueuer(get_async_db))

    @app.post("/records/{record_id}/refresh")
    async def refresh(
        record_id: int,
        db: AsyncSession = db_dependency,
        enqueue: AsyncEnqueuer = enqueue_dependency,
        fail: bool = False,
    ) -> dict[str, int]:
        assert enqueue.session is db
        loops["endpoint"] = asyncio.get_running_loop()
        db.add(Record(id=record_id, status="queued"))
        job_id = await enqueue(async_bump, record_id=record_id)
        if fail:
            raise Boom("the request fails after enqueueing")
        await db.commit()
        return {"job_id": job_id}

    yield app, jobs, loops
    jobs.close()


def test_async_endpoints_enqueue_in_their_async_session_and_async_tasks_share_the_app_loop(
    async_app: tuple[FastAPI, JobQueue, Any], session_factory: sessionmaker[Session]
) -> None:
    app, jobs, loops = async_app
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/records/1/refresh", params={"fail": True}).status_code == 500
        job_ids = [client.post(f"/records/{n}/refresh").json()["job_id"] for n in (2, 3, 4)]
        eventually(lambda: all(jobs.get(i).state is JobState.COMPLETED for i in job_ids))
    assert sorted(job.args["record_id"] for job in jobs.list_jobs()) == [2, 3, 4]
    assert counter_total(session_factory) == 3
    # One loop for endpoints and tasks, so they can share one async engine.
    assert loops["task"] is loops["endpoint"]
    with session_factory() as db:
        assert db.get(Record, 1) is None


@pytest.mark.dialects(
    "sqlite", reason="the option reaches the worker the same way on every database"
)
def test_prune_after_given_to_the_lifespan_reaches_its_worker(jobs: JobQueue) -> None:
    """Passing an option through is the same on every database (pruning itself is tested on
    each by the store tests)."""

    @jobs.task
    def noop() -> None:
        pass

    noop.enqueue()
    jobs.drain()
    lifespan = sqljobs.fastapi.lifespan(jobs, prune_after=0, prune_interval=0.1, poll_interval=0.05)
    with TestClient(FastAPI(lifespan=lifespan)):
        assert lifespan.worker is not None and lifespan.worker.prune_after == timedelta(0)
        eventually(lambda: no_jobs(jobs), timeout=30)
    keep = sqljobs.fastapi.lifespan(jobs, prune_after=None)
    with TestClient(FastAPI(lifespan=keep)):
        assert keep.worker is not None and keep.worker.prune_after is None
    default = sqljobs.fastapi.lifespan(jobs)
    with TestClient(FastAPI(lifespan=default)):
        assert default.worker is not None and default.worker.prune_after == timedelta(days=7)
