"""Secret[...] arguments on SQLite, PostgreSQL and MariaDB: encrypted in the row, handed to
the task as a redacted Secret, erased when the job finishes, hidden by the REST API, the
dashboard and the CLI; key rotation, a missing key, and retry of an erased job."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

import sqljobs.fastapi
from sqljobs import Backoff, Cancel, JobQueue, JobState, Secret, SecretsErased, Unique
from sqljobs.cli import _build_app
from sqljobs.jobs import NewJob
from tests.helpers import all_finished, app_module, eventually

PASSWORD = "correct-horse-battery-staple-42"
KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
ERASED = {"$secret": None}


def raw_rows(engine: Engine) -> list[str]:
    """Every job row as the text of all its columns, read with plain SQL."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM sqljobs_jobs ORDER BY id")).all()
    return [" ".join(str(value) for value in row) for row in rows]


def stored_args(engine: Engine, job_id: int) -> Any:
    return secret_free(engine).get(job_id).args


def secret_free(engine: Engine) -> JobQueue:
    """A queue without keys, reading rows as the dashboard or the CLI would."""
    return JobQueue(sessionmaker(engine))


@pytest.fixture
def secret_jobs(jobs: JobQueue, session_factory: sessionmaker[Session]) -> Iterator[JobQueue]:
    queue = JobQueue(session_factory, secret_keys=[KEY])  # the `jobs` fixture made the schema
    yield queue
    queue.close()


@pytest.fixture
def seen() -> list[tuple[str, str, Any]]:
    return []


@pytest.fixture
def signup(secret_jobs: JobQueue, seen: list[tuple[str, str, Any]]) -> Any:
    @secret_jobs.task(name="signup", max_attempts=1)
    def signup(email: str, password: Secret[str]) -> None:
        seen.append((repr(password), f"{password}", password.get_secret_value()))

    return signup


def test_a_secret_is_encrypted_in_the_row_and_the_task_gets_it_redacted(
    secret_jobs: JobQueue, signup: Any, seen: list[Any], engine: Engine
) -> None:
    first = signup.enqueue(email="a@example.com", password=PASSWORD)
    second = signup.enqueue(email="b@example.com", password=Secret(PASSWORD))
    [third] = secret_jobs.enqueue_many(None, [signup.prepare(email="c@x", password=PASSWORD)])
    rows = raw_rows(engine)
    assert len(rows) == 3 and not any(PASSWORD in row for row in rows)
    token = stored_args(engine, first)["password"]["$secret"]
    assert isinstance(token, str) and token.startswith("gAAAAA")
    assert secret_jobs.get(first).args["email"] == "a@example.com"
    secret_jobs.drain()
    assert seen == [("Secret('**********')", "**********", PASSWORD)] * 3
    assert all(secret_jobs.get(i).state is JobState.COMPLETED for i in (first, second, third))


def test_a_finished_jobs_secrets_are_erased_when_it_completes_is_discarded_or_cancelled(
    secret_jobs: JobQueue, engine: Engine
) -> None:
    @secret_jobs.task(name="plain", max_attempts=1)
    def plain(password: Secret[str]) -> None:
        pass

    @secret_jobs.task(name="with_session", max_attempts=1)
    def with_session(session: Session, password: Secret[str]) -> None:
        session.execute(text("SELECT 1"))

    @secret_jobs.task(name="fails", max_attempts=1)
    def fails(password: Secret[str]) -> None:
        raise RuntimeError(f"login refused for {password}")

    @secret_jobs.task(name="gives_up", max_attempts=1)
    def gives_up(password: Secret[str]) -> None:
        raise Cancel("not today")

    ids = {
        "completed": plain.enqueue(password=Secret(PASSWORD)),
        "completed in its session": with_session.enqueue(password=Secret(PASSWORD)),
        "discarded": fails.enqueue(password=Secret(PASSWORD)),
        "cancelled by the task": gives_up.enqueue(password=Secret(PASSWORD)),
    }
    secret_jobs.drain()
    ids["cancelled while waiting"] = plain.configure(delay=3600).enqueue(password=Secret(PASSWORD))
    secret_jobs.cancel(ids["cancelled while waiting"])
    ids["cancelled while running"] = plain.enqueue(password=Secret(PASSWORD))
    secret_jobs.store.claim(worker_id="w", queues=["default"], limit=1, lease=timedelta(hours=1))
    secret_jobs.cancel(ids["cancelled while running"])

    states = {case: secret_jobs.get(job_id).state.value for case, job_id in ids.items()}
    assert states == {
        "completed": "completed",
        "completed in its session": "completed",
        "discarded": "discarded",
        "cancelled by the task": "cancelled",
        "cancelled while waiting": "cancelled",
        "cancelled while running": "cancelled",
    }
    erased = {case: stored_args(engine, job_id) for case, job_id in ids.items()}
    assert erased == {case: {"password": ERASED} for case in ids}
    assert secret_jobs.get(ids["discarded"]).errors[-1].message == "login refused for **********"
    assert not any("gAAAAA" in row or PASSWORD in row for row in raw_rows(engine))


def test_a_worker_erases_secrets_in_its_batched_completions_and_keeps_other_args(
    secret_jobs: JobQueue, engine: Engine
) -> None:
    @secret_jobs.task(name="secret")
    def secret(n: int, password: Secret[str]) -> None:
        pass

    @secret_jobs.task(name="open")
    def open_task(n: int, note: str) -> None:
        pass

    ids = []
    for n in range(8):
        ids.append(secret.enqueue(n=n, password=Secret(PASSWORD)))
        ids.append(open_task.enqueue(n=n, note="kept"))
    worker = secret_jobs.worker(concurrency=4, poll_interval=0.05)
    worker.start()
    try:
        eventually(lambda: all_finished(secret_jobs, ids), timeout=60)
    finally:
        worker.stop()
    assert {secret_jobs.get(i).state for i in ids} == {JobState.COMPLETED}
    args = [stored_args(engine, job_id) for job_id in ids]
    assert args[0::2] == [{"n": n, "password": ERASED} for n in range(8)]
    assert args[1::2] == [{"n": n, "note": "kept"} for n in range(8)]


def test_a_retried_job_keeps_its_secret_until_its_last_attempt(
    secret_jobs: JobQueue, engine: Engine
) -> None:
    attempts: list[str] = []

    @secret_jobs.task(name="flaky", max_attempts=2, backoff=Backoff(base=3600, jitter=0))
    def flaky(password: Secret[str]) -> None:
        attempts.append(password.get_secret_value())
        if len(attempts) == 1:
            raise RuntimeError("try again")

    job_id = flaky.enqueue(password=Secret(PASSWORD))
    secret_jobs.drain()
    assert secret_jobs.get(job_id).state is JobState.RETRYABLE
    assert stored_args(engine, job_id)["password"]["$secret"] is not None
    secret_jobs.drain(include_scheduled=True)
    assert attempts == [PASSWORD, PASSWORD]
    assert secret_jobs.get(job_id).state is JobState.COMPLETED
    assert stored_args(engine, job_id) == {"password": ERASED}


def test_a_job_rescued_after_its_last_attempt_has_its_secrets_erased(
    secret_jobs: JobQueue, signup: Any, engine: Engine
) -> None:
    job_id = signup.enqueue(email="a@x", password=PASSWORD)
    [claimed] = secret_jobs.store.claim(
        worker_id="dies", queues=["default"], limit=1, lease=timedelta(0)
    )
    assert secret_jobs.store.mark_started(claimed)
    eventually(lambda: secret_jobs.store.rescue() == [job_id], timeout=10)
    assert secret_jobs.get(job_id).state is JobState.DISCARDED
    assert stored_args(engine, job_id) == {"email": "a@x", "password": ERASED}


def test_retry_of_a_job_whose_secrets_were_erased_is_refused(
    secret_jobs: JobQueue, signup: Any
) -> None:
    job_id = signup.enqueue(email="a@x", password=PASSWORD)
    secret_jobs.drain()
    with pytest.raises(SecretsErased, match="its secret argument\\(s\\) 'password' were erased"):
        secret_jobs.retry(job_id)
    app = FastAPI()
    app.include_router(sqljobs.fastapi.router(secret_jobs, allow_unauthenticated=True))
    with TestClient(app) as client:
        refused = client.post(f"/api/jobs/{job_id}/retry")
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        f"job {job_id} cannot run again: its secret argument(s) 'password' were erased when it "
        "finished; enqueue a new job with the secrets instead"
    )
    assert secret_jobs.get(job_id).state is JobState.COMPLETED


def test_the_rest_api_and_the_dashboard_show_no_secret(
    secret_jobs: JobQueue, signup: Any, engine: Engine
) -> None:
    done = signup.enqueue(email="a@x", password=PASSWORD)
    secret_jobs.drain()
    waiting = signup.enqueue(email="b@x", password=PASSWORD, delay=3600)
    token = stored_args(engine, waiting)["password"]["$secret"]
    app = FastAPI()
    app.include_router(sqljobs.fastapi.router(secret_jobs, allow_unauthenticated=True))
    with TestClient(app) as client:
        listed = client.get("/api/jobs").json()["items"]
        detail = client.get(f"/api/jobs/{waiting}").json()
        pages = [client.get(path).text for path in ("/jobs", f"/jobs/{waiting}", f"/jobs/{done}")]
    assert [job["args"] for job in listed] == [
        {"email": "b@x", "password": "<secret>"},
        {"email": "a@x", "password": "<secret erased>"},
    ]
    assert detail["args"] == {"email": "b@x", "password": "<secret>"}
    assert all(token not in page and PASSWORD not in page for page in pages)
    assert "&lt;secret&gt;" in pages[1] and "&lt;secret erased&gt;" in pages[2]


def test_the_cli_shows_no_secret(
    secret_jobs: JobQueue, signup: Any, engine: Engine, db_url: str
) -> None:  # fmt: skip
    job_id = signup.enqueue(email="a@x", password=PASSWORD)
    token = stored_args(engine, job_id)["password"]["$secret"]
    with app_module("tests.integration.secrets_app", db_url, SQLJOBS_TEST_SECRET_KEYS=KEY):
        runner, command, app = CliRunner(), _build_app(), "tests.integration.secrets_app:jobs"
        outputs = [
            runner.invoke(command, [*args, "--app", app])
            for args in (
                ["jobs", "show", str(job_id)],
                ["jobs", "show", str(job_id), "--json"],
                ["jobs", "list"],
                ["jobs", "list", "--json"],
            )
        ]
    assert [result.exit_code for result in outputs] == [0, 0, 0, 0]
    assert all(token not in r.stdout and PASSWORD not in r.stdout for r in outputs)
    assert '"password": "<secret>"' in outputs[0].stdout
    assert '"password": "<secret>"' in outputs[1].stdout


def test_an_old_key_still_decrypts_after_rotation(
    jobs: JobQueue, session_factory: sessionmaker[Session], engine: Engine
) -> None:
    got: list[str] = []

    def register(queue: JobQueue) -> Any:
        @queue.task(name="signup")
        def signup(password: Secret[str]) -> None:
            got.append(password.get_secret_value())

        return signup

    before = JobQueue(session_factory, secret_keys=[KEY])
    old_job = register(before).enqueue(password="sealed with the old key")
    rotated = JobQueue(session_factory, secret_keys=f"{NEW_KEY}, {KEY}")  # new key first
    rotated_signup = register(rotated)
    rotated.drain()
    assert got == ["sealed with the old key"] and rotated.get(old_job).state.is_finished
    new_job = rotated_signup.enqueue(password="sealed with the new key")
    only_new = JobQueue(session_factory, secret_keys=[NEW_KEY])  # the old key dropped
    register(only_new)
    only_new.drain()
    assert got == ["sealed with the old key", "sealed with the new key"]
    assert only_new.get(new_job).state is JobState.COMPLETED


def test_a_secret_sealed_with_a_key_the_worker_lacks_waits_for_one_that_holds_it(
    jobs: JobQueue, session_factory: sessionmaker[Session], engine: Engine
) -> None:
    got: list[str] = []

    def register(queue: JobQueue) -> Any:
        @queue.task(name="signup", max_attempts=1)
        def signup(password: Secret[str]) -> None:
            got.append(password.get_secret_value())

        return signup

    job_id = register(JobQueue(session_factory, secret_keys=[KEY])).enqueue(password=PASSWORD)
    stranger = JobQueue(session_factory, secret_keys=[NEW_KEY])
    register(stranger)
    stranger.drain()
    job = stranger.get(job_id)
    assert (job.state, job.attempt, got) == (JobState.SCHEDULED, 0, [])
    assert job.errors[-1].type == "SecretNotReadable"
    assert job.errors[-1].message == (
        "signup: secret argument 'password' cannot be decrypted with this process's 1 secret "
        "key(s): it was sealed with a key they do not hold (add the key it was sealed with to "
        "secret_keys, after the current one), or the row was altered; back in the queue for 5s "
        "for a worker that holds its key (attempt not counted)"
    )
    assert stored_args(engine, job_id)["password"]["$secret"] is not None  # not erased
    owner = JobQueue(session_factory, secret_keys=[KEY])
    register(owner)
    owner.drain(include_scheduled=True)
    assert got == [PASSWORD] and owner.get(job_id).state is JobState.COMPLETED


def test_a_token_moved_to_another_task_is_refused(
    secret_jobs: JobQueue, signup: Any, engine: Engine
) -> None:
    shown: list[Any] = []

    @secret_jobs.task(name="echo", max_attempts=1)
    def echo(password: Secret[str]) -> str:
        shown.append(password.get_secret_value())
        return password.get_secret_value()

    sealed = stored_args(engine, signup.enqueue(email="a@x", password=PASSWORD))["password"]
    moved_row = NewJob(
        task="echo", args={"password": sealed}, queue="default", priority=0, max_attempts=1
    )
    [moved] = secret_jobs.store.enqueue(None, [moved_row])
    secret_jobs.drain(ids=[moved])
    job = secret_jobs.get(moved)
    assert shown == [] and job.state is JobState.DISCARDED
    assert job.errors[-1].message == (
        "echo: secret argument 'password' holds a secret sealed for another task or argument "
        "(the row was altered); refusing to run it"
    )


def test_a_secret_never_goes_into_a_unique_key(secret_jobs: JobQueue, engine: Engine) -> None:
    @secret_jobs.task(name="welcome", unique=Unique())
    def welcome(email: str, password: Secret[str]) -> None:
        pass

    first = welcome.enqueue(email="a@x", password=Secret(PASSWORD))
    assert welcome.enqueue(email="a@x", password=Secret("another password")) == first
    assert welcome.enqueue(email="b@x", password=Secret(PASSWORD)) != first
    assert not any(PASSWORD in row for row in raw_rows(engine))


def test_inline_mode_runs_secret_jobs_and_erases_them(
    jobs: JobQueue, session_factory: sessionmaker[Session], engine: Engine
) -> None:
    inline = JobQueue(session_factory, secret_keys=[KEY], inline=True)
    got: list[str] = []

    @inline.task(name="signup")
    def signup(password: Secret[str]) -> None:
        got.append(password.get_secret_value())

    job_id = signup.enqueue(password=Secret(PASSWORD))
    assert got == [PASSWORD] and stored_args(engine, job_id) == {"password": ERASED}
