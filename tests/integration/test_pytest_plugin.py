"""Issue 13, item 5: the pytest plugin (entry point ``pytest11``), run by pytester in a fresh
pytest process against a generated SQLite FastAPI app whose conftest defines one fixture."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

APP = """
import threading
from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

import sqljobs.fastapi
from sqljobs import JobQueue
from sqljobs.fastapi import Enqueuer, enqueuer

engine = create_engine("sqlite:///{path}")
SessionLocal = sessionmaker(engine)
jobs = JobQueue(SessionLocal)
jobs.create_schema()
sent = []


@jobs.task(name="send_mail")
def send_mail(to: str) -> None:
    if to == "bounce@example.com":
        raise ValueError("mailbox unavailable")
    sent.append((to, threading.get_ident()))


def get_db():
    with SessionLocal() as db:
        yield db


app = FastAPI(lifespan=sqljobs.fastapi.lifespan(jobs, poll_interval=0.01))


@app.post("/mail/{{to}}")
def mail(to: str, enqueue: Enqueuer = Depends(enqueuer(get_db)), db: Session = Depends(get_db)):
    job_id = enqueue(send_mail, to=to)
    db.commit()
    return {{"job_id": job_id, "thread": threading.get_ident()}}
"""

CONFTEST = """
import pytest
from app import jobs

@pytest.fixture
def sqljobs_queue():
    return jobs
"""

TESTS = """
import pytest
from fastapi.testclient import TestClient
from sqljobs import JobState, testing
from app import app, jobs, send_mail, sent


def test_inline_runs_in_the_request_thread(jobs_reset, jobs_inline):
    with TestClient(app) as client:
        answer = client.post("/mail/a@example.com").json()
    assert sent[-1] == ("a@example.com", answer["thread"])
    assert jobs.get(answer["job_id"]).state is JobState.COMPLETED


def test_inline_raises_the_task_error(jobs_reset, jobs_inline):
    with TestClient(app) as client, pytest.raises(ValueError, match="unavailable"):
        client.post("/mail/bounce@example.com")


def test_captured_and_drained_without_a_worker(
    jobs_reset, jobs_no_worker, jobs_captured, jobs_drain
):
    send_mail.enqueue(to="before@example.com")  # not this test's, once reset
    with TestClient(app) as client:
        job_id = client.post("/mail/b@example.com").json()["job_id"]
    testing.assert_enqueued(jobs_captured, send_mail, to="b@example.com")
    assert [job.id for job in testing.enqueued(jobs_captured)] != []
    assert jobs_drain().completed[-1] == job_id


def test_reset_starts_from_an_empty_queue(jobs_reset):
    assert testing.enqueued(jobs_reset, states=JobState) == []
"""


@pytest.mark.slow
def test_the_plugins_fixtures_need_only_a_sqljobs_queue_fixture(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(app=APP.format(path=pytester.path / "app.db"))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_mail=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=4)


@pytest.mark.slow
def test_the_plugin_says_how_to_define_the_queue_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mail=textwrap.dedent(
            """
            def test_needs_the_queue(jobs_reset):
                pass
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*define it in conftest.py as*", "*def sqljobs_queue():*"])
