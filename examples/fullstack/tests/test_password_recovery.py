"""Password recovery: the e-mail goes out once, in the background, and its link's token
resets the password; an unknown address gets the same answer and no e-mail."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

import sqljobs
from examples.fullstack.app import crud
from examples.fullstack.app.core.db import SessionLocal, jobs
from examples.fullstack.app.jobs import send_password_recovery_email
from examples.fullstack.tests.utils import jobs_for_user, outbox, random_email


def test_password_recovery_sends_one_email_whose_token_resets_the_password(
    client: TestClient,
) -> None:
    email = random_email()
    user = client.post("/api/v1/users/signup", json={"email": email, "password": "first-pass"})
    answer = client.post(f"/api/v1/password-recovery/{email}")
    assert answer.status_code == 200, answer.text
    [job] = jobs_for_user(send_password_recovery_email, user.json()["id"])
    assert jobs.wait(job.id).state is sqljobs.JobState.COMPLETED
    [recovery] = [e for e in outbox(email) if "Password recovery" in e.subject]
    token = re.search(r"token=([\w.-]+)", recovery.html_content)
    assert token is not None, recovery.html_content

    reset = client.post(
        "/api/v1/reset-password/", json={"token": token.group(1), "new_password": "second-pass"}
    )
    assert reset.status_code == 200, reset.text
    with SessionLocal() as db:
        assert crud.authenticate(session=db, email=email, password="second-pass") is not None
        assert crud.authenticate(session=db, email=email, password="first-pass") is None


def test_password_recovery_for_an_unknown_email_answers_the_same_and_sends_nothing(
    client: TestClient,
) -> None:
    known = random_email()
    client.post("/api/v1/users/signup", json={"email": known, "password": "first-pass"})
    unknown = random_email()
    before = len(jobs.list_jobs(task=send_password_recovery_email.name, limit=10_000))
    answers = [client.post(f"/api/v1/password-recovery/{e}").json() for e in (known, unknown)]
    assert answers[0] == answers[1]
    after = len(jobs.list_jobs(task=send_password_recovery_email.name, limit=10_000))
    assert after == before + 1
    assert outbox(unknown) == []


def test_a_forged_reset_token_is_refused(client: TestClient) -> None:
    reset = client.post(
        "/api/v1/reset-password/", json={"token": "forged.token", "new_password": "second-pass"}
    )
    assert reset.status_code == 400
