"""Sign-up enqueues the welcome e-mail in the request's transaction; the job writes it to the
outbox in its own session. Each test runs in one transaction rolled back afterwards."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from examples.asyncapp.app.jobs import jobs, send_welcome_email
from examples.asyncapp.app.models import User
from sqljobs import DrainResult, JobQueue, JobState, testing

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_sign_up_enqueues_the_welcome_email_in_the_request_transaction(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    response = await client.post("/users", json={"email": "ann@example.com"})
    assert response.status_code == 201, response.text
    body = response.json()
    job = await testing.aassert_enqueued(
        jobs, send_welcome_email, user_id=body["id"], using=db_session
    )
    assert job.id == body["job_id"]
    assert (await client.get(f"/users/{body['id']}/emails")).json() == []  # not run yet


async def test_drained_welcome_email_lands_in_the_outbox_once(
    client: httpx.AsyncClient, jobs_adrain: Callable[[], Awaitable[DrainResult]]
) -> None:
    body = (await client.post("/users", json={"email": "bob@example.com"})).json()
    result = await jobs_adrain()  # runs the async task on this test's event loop
    assert result.completed == [body["job_id"]]
    emails = await client.get(f"/users/{body['id']}/emails")
    assert emails.json() == ["Welcome, bob@example.com"]


async def test_inline_sends_the_email_before_the_response(
    client: httpx.AsyncClient, jobs_inline: JobQueue
) -> None:
    body = (await client.post("/users", json={"email": "cy@example.com"})).json()
    emails = await client.get(f"/users/{body['id']}/emails")
    assert emails.json() == ["Welcome, cy@example.com"]


async def test_a_taken_email_enqueues_nothing_more(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    first = await client.post("/users", json={"email": "dee@example.com"})
    again = await client.post("/users", json={"email": "dee@example.com"})
    assert (first.status_code, again.status_code) == (201, 409)
    found = await testing.aenqueued(jobs, send_welcome_email, using=db_session)
    assert [job.id for job in found] == [first.json()["job_id"]]


async def test_each_test_starts_from_an_empty_database(db_session: AsyncSession) -> None:
    # The tests before signed users up and ran jobs: all of it was rolled back.
    assert (await db_session.scalar(select(func.count()).select_from(User))) == 0
    assert await testing.aenqueued(jobs, states=JobState, using=db_session) == []
