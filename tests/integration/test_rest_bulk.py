"""The REST API's bulk routes and queue pausing (issue 15), on every database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

import sqljobs.fastapi
from sqljobs import JobQueue, JobState
from tests.integration.test_rest_api import AUTH, PREFIX, csrf_token, require_token

API = f"{PREFIX}/api"


@pytest.fixture
def client(jobs: JobQueue) -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(
        sqljobs.fastapi.router(jobs, dependencies=[Depends(require_token)]), prefix=PREFIX
    )
    with TestClient(app, headers=AUTH) as test_client:
        yield test_client


def _discarded(jobs: JobQueue, count: int) -> list[int]:
    @jobs.task(name="boom", queue="mail", max_attempts=1)
    def boom(n: int) -> None:
        raise RuntimeError("boom")

    ids = [boom.enqueue(n=i) for i in range(count)]
    jobs.drain(ids=ids)
    return ids


def test_a_bulk_request_is_a_dry_run_unless_it_says_otherwise(
    jobs: JobQueue, client: TestClient
) -> None:
    ids = _discarded(jobs, 3)
    body = {"queue": "mail", "error_type": "RuntimeError"}

    dry = client.post(f"{API}/bulk/retry", json=body)
    assert dry.status_code == 200, dry.text
    assert dry.json() == {
        "action": "retry",
        "dry_run": True,
        "matched": 3,
        "changed": 0,
        "changed_ids": [],
        "skipped": {},
        "batches": 0,
    }
    assert {jobs.get(i).state for i in ids} == {JobState.DISCARDED}

    done = client.post(f"{API}/bulk/retry", json={**body, "dry_run": False, "batch_size": 2})
    assert done.json()["changed_ids"] == ids and done.json()["batches"] == 2
    assert {jobs.get(i).state for i in ids} == {JobState.AVAILABLE}


def test_bulk_requests_with_a_bad_state_or_from_another_site_are_refused(
    jobs: JobQueue, client: TestClient
) -> None:
    _discarded(jobs, 1)
    bad = client.post(f"{API}/bulk/delete", json={"state": ["running"], "dry_run": False})
    assert bad.status_code == 422
    assert "running jobs cannot be deleted in bulk" in bad.json()["detail"]
    age = client.post(f"{API}/bulk/cancel", json={"older_than": "soon"})
    assert age.status_code == 422 and age.json()["detail"].startswith("older_than:")
    unknown = client.post(f"{API}/bulk/explode", json={})
    assert unknown.status_code == 422
    evil = client.post(
        f"{API}/bulk/delete",
        json={"state": ["discarded"], "dry_run": False},
        headers={"Origin": "https://evil.example"},
    )
    assert evil.status_code == 403
    assert jobs.bulk("delete", dry_run=True).matched == 1


def test_queues_are_paused_and_resumed_over_rest_and_stats_show_it(
    jobs: JobQueue, client: TestClient
) -> None:
    _discarded(jobs, 1)
    assert client.post(f"{API}/queues/mail/pause").json() == {"queue": "mail", "paused": True}
    assert jobs.paused_queues() == ["mail"]
    stats = {q["queue"]: q for q in client.get(f"{API}/stats").json()["queues"]}
    assert stats["mail"]["paused"] is True
    resumed = client.post(f"{API}/queues/mail/resume").json()
    assert resumed == {"queue": "mail", "paused": False}
    assert jobs.paused_queues() == []
    assert client.post(f"{API}/queues/{'q' * 101}/pause").status_code == 422
    odd = client.post(f"{API}/queues/a%2Fb%3Fc/pause").json()
    assert odd == {"queue": "a/b?c", "paused": True} and jobs.paused_queues() == ["a/b?c"]


def test_read_only_routers_have_no_bulk_or_queue_routes(jobs: JobQueue) -> None:
    app = FastAPI()
    app.include_router(sqljobs.fastapi.router(jobs, read_only=True), prefix=PREFIX)
    with TestClient(app) as client:
        assert client.post(f"{API}/bulk/retry", json={}).status_code in (404, 405)
        assert client.post(f"{API}/queues/mail/pause").status_code in (404, 405)


def test_dashboard_bulk_forms_count_first_and_need_the_csrf_token(
    jobs: JobQueue, client: TestClient
) -> None:
    ids = _discarded(jobs, 2)
    token = csrf_token(client.get(f"{PREFIX}/jobs").text)
    form = {"action": "retry", "state": "discarded", "queue": "mail"}

    assert client.post(f"{PREFIX}/bulk", data=form).status_code == 403
    forged = client.post(
        f"{PREFIX}/queues/pause", data={"queue": "mail", "csrf_token": "forged.token"}
    )
    assert forged.status_code == 403 and jobs.paused_queues() == []
    count = client.post(f"{PREFIX}/bulk", data={**form, "csrf_token": token})
    assert count.status_code == 200 and "<strong>2</strong> jobs match" in count.text
    assert {jobs.get(i).state for i in ids} == {JobState.DISCARDED}
    bad = client.post(f"{PREFIX}/bulk", data={**form, "state": "running", "csrf_token": token})
    assert bad.status_code == 422 and "running jobs cannot be retried in bulk" in bad.text

    done = client.post(f"{PREFIX}/bulk", data={**form, "confirm": "yes", "csrf_token": token})
    assert "Retry: 2 of 2 jobs changed in 1 batch" in done.text
    assert {jobs.get(i).state for i in ids} == {JobState.AVAILABLE}
    paused = client.post(
        f"{PREFIX}/queues/pause",
        data={"queue": "mail", "csrf_token": token},
        follow_redirects=False,
    )
    assert paused.status_code == 303 and jobs.paused_queues() == ["mail"]
    assert 'data-paused="mail"' in client.get(f"{PREFIX}/").text
