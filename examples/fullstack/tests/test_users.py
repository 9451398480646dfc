"""Sign-up through the API, with the app's lifespan running its worker: the new-account
e-mail job is enqueued with the user, runs in its own session and writes its outbox row
exactly once."""

from __future__ import annotations

from fastapi.testclient import TestClient

import sqljobs
from examples.fullstack.app.core.db import jobs
from examples.fullstack.app.jobs import send_new_account_email
from examples.fullstack.tests.utils import jobs_for_user, outbox, random_email


def signup(client: TestClient, email: str) -> dict[str, object]:
    response = client.post(
        "/api/v1/users/signup", json={"email": email, "password": "secret-pass", "full_name": "A"}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_signup_sends_the_new_account_email_exactly_once(client: TestClient) -> None:
    email = random_email()
    user = signup(client, email)
    [job] = jobs_for_user(send_new_account_email, str(user["id"]))
    finished = jobs.wait(job.id)
    assert finished.state is sqljobs.JobState.COMPLETED, finished.errors
    [sent] = outbox(email)
    assert sent.subject.endswith(f"New account for user {email}")
    assert client.get(f"/api/v1/users/{user['id']}").json()["email"] == email


def test_a_refused_signup_enqueues_no_email(client: TestClient) -> None:
    email = random_email()
    user = signup(client, email)
    [job] = jobs_for_user(send_new_account_email, str(user["id"]))
    assert jobs.wait(job.id).state is sqljobs.JobState.COMPLETED
    before = len(jobs.list_jobs(task=send_new_account_email.name, limit=10_000))
    again = client.post("/api/v1/users/signup", json={"email": email, "password": "other-pass"})
    assert again.status_code == 400
    assert len(jobs.list_jobs(task=send_new_account_email.name, limit=10_000)) == before
    assert len(outbox(email)) == 1


def test_items_belong_to_their_owner(client: TestClient) -> None:
    user = signup(client, random_email())
    created = client.post(f"/api/v1/users/{user['id']}/items", json={"title": "Pen"})
    assert created.status_code == 200, created.text
    listed = client.get(f"/api/v1/users/{user['id']}/items").json()
    assert (listed["count"], listed["data"][0]["title"]) == (1, "Pen")
    assert listed["data"][0]["owner_id"] == user["id"]
