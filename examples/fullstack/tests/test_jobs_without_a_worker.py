"""The same flow without the lifespan (a TestClient outside ``with``): no worker runs, the
test checks what was enqueued and runs it with ``jobs.drain()``; running it again writes
nothing more."""

from __future__ import annotations

from fastapi.testclient import TestClient

from examples.fullstack.app.core.db import jobs
from examples.fullstack.app.jobs import send_new_account_email
from examples.fullstack.app.main import app
from examples.fullstack.tests.utils import outbox, random_email
from sqljobs import testing


def test_signup_enqueues_the_email_and_draining_sends_it_once() -> None:
    client = TestClient(app)  # no `with`: no lifespan, no worker
    email = random_email()
    user = client.post("/api/v1/users/signup", json={"email": email, "password": "secret-pass"})
    assert user.status_code == 200, user.text
    job = testing.assert_enqueued(jobs, send_new_account_email, user_id=user.json()["id"])
    assert outbox(email) == []
    assert jobs.drain(ids=[job.id]).completed == [job.id]
    assert jobs.drain(ids=[job.id]).completed == []
    assert len(outbox(email)) == 1
