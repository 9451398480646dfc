"""Issue 13, item 6: a job enqueued in a session that never commits it is dropped, and a
WARNING names it (task, id) - rolled back, closed, garbage-collected, or a request whose
endpoint forgot ``db.commit()`` (the template's password recovery). Committed jobs, and a
failed attempt's own session, warn of nothing."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import JobQueue, Task
from sqljobs.fastapi import Enqueuer, enqueuer


def dropped(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "dropped, never to run" in r.getMessage()
    ]


@pytest.fixture
def send_mail(jobs: JobQueue) -> Task[..., Any]:
    @jobs.task(name="send_mail", max_attempts=1)
    def send_mail(to: str) -> None:
        pass

    return send_mail


def test_a_rolled_back_enqueue_warns_naming_the_job(
    jobs: JobQueue,
    session_factory: sessionmaker[Session],
    send_mail: Task[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with session_factory() as db:
        job_id = send_mail.enqueue(db, to="a@example.com")
        db.rollback()
    [message] = dropped(caplog)
    assert f"send_mail (id {job_id})" in message and "rolled back" in message
    assert jobs.list_jobs() == []


def test_a_session_closed_without_commit_warns_naming_the_job(
    jobs: JobQueue,
    session_factory: sessionmaker[Session],
    send_mail: Task[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = session_factory()
    job_id = send_mail.enqueue(db, to="a@example.com")
    db.close()
    [message] = dropped(caplog)
    assert f"send_mail (id {job_id})" in message and "closed without a commit" in message


def test_a_garbage_collected_session_warns_naming_the_job(
    jobs: JobQueue,
    session_factory: sessionmaker[Session],
    send_mail: Task[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = session_factory()
    job_id = send_mail.enqueue(db, to="a@example.com")
    del db
    gc.collect()
    [message] = dropped(caplog)
    assert f"send_mail (id {job_id})" in message and "garbage-collected" in message
    assert jobs.list_jobs() == []


def test_a_rolled_back_savepoint_warns_only_of_its_own_jobs(
    jobs: JobQueue,
    session_factory: sessionmaker[Session],
    send_mail: Task[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with session_factory() as db:
        kept = send_mail.enqueue(db, to="kept@example.com")
        savepoint = db.begin_nested()
        lost = send_mail.enqueue(db, to="lost@example.com")
        savepoint.rollback()
        db.commit()
    [message] = dropped(caplog)
    assert f"(id {lost})" in message and f"(id {kept})" not in message
    assert [job.id for job in jobs.list_jobs()] == [kept]


def test_committed_jobs_and_a_failed_attempts_session_warn_of_nothing(
    jobs: JobQueue,
    session_factory: sessionmaker[Session],
    send_mail: Task[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    @jobs.task(max_attempts=1)
    def fails_after_enqueueing(session: Session) -> None:
        send_mail.enqueue(session, to="child@example.com")
        raise RuntimeError("the attempt fails: its child is rolled back with it")

    with session_factory() as db:
        fails_after_enqueueing.enqueue(db)
        db.commit()
    assert len(jobs.drain().discarded) == 1
    assert dropped(caplog) == []


def test_an_endpoint_that_never_commits_warns_of_the_job_its_enqueuer_returned(
    jobs: JobQueue,
    session_factory: sessionmaker[Session],
    send_mail: Task[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The template's password recovery: enqueue the mail, return, never commit."""

    def get_db() -> Iterator[Session]:
        with session_factory() as db:
            yield db

    app = FastAPI()
    enqueue_dependency = Depends(enqueuer(get_db))

    @app.post("/password-recovery/{email}")
    def recover_password(email: str, enqueue: Enqueuer = enqueue_dependency) -> dict[str, int]:
        return {"job_id": enqueue(send_mail, to=email)}

    with TestClient(app) as client:
        job_id = client.post("/password-recovery/a@example.com").json()["job_id"]
    [message] = dropped(caplog)
    assert f"send_mail (id {job_id})" in message
    assert jobs.list_jobs() == []
