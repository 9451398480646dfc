"""The REST API and the dashboard's server side, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.testclient import TestClient

import sqljobs.fastapi
from sqljobs import Backoff, ConfigurationError, JobQueue, JobState

PREFIX = "/admin/jobs"
AUTH = {"X-Token": "let-me-in"}
EVIL = "<script>window.__xss = 1</script>"


def require_token(x_token: str | None = Header(None)) -> None:
    if x_token != "let-me-in":
        raise HTTPException(401, "who are you?")


@pytest.fixture
def tasks(jobs: JobQueue) -> dict[str, Any]:
    @jobs.task(name="ok", queue="default")
    def ok(n: int) -> int:
        return n * 2

    @jobs.task(name="boom", queue="mail", max_attempts=1, backoff=Backoff(base=0.01, jitter=0))
    def boom(message: str) -> None:
        raise RuntimeError(message)

    return {"ok": ok, "boom": boom}


@pytest.fixture
def client(jobs: JobQueue, tasks: dict[str, Any]) -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(
        sqljobs.fastapi.router(jobs, dependencies=[Depends(require_token)]), prefix=PREFIX
    )
    with TestClient(app, headers=AUTH) as test_client:
        yield test_client


def finished_jobs(jobs: JobQueue, tasks: dict[str, Any]) -> dict[str, int]:
    """Three completed jobs, one discarded with an HTML/script error, one waiting."""
    ids = {f"ok{i}": tasks["ok"].enqueue(n=i) for i in range(3)}
    ids["boom"] = tasks["boom"].enqueue(message=EVIL)
    jobs.drain()
    ids["waiting"] = tasks["ok"].enqueue(n=99, delay=3600)
    return ids


def test_mutating_routes_need_an_auth_dependency_unless_the_app_opts_out(jobs: JobQueue) -> None:
    with pytest.raises(ConfigurationError, match="auth dependency"):
        sqljobs.fastapi.router(jobs)
    read_only = FastAPI()
    read_only.include_router(sqljobs.fastapi.router(jobs, read_only=True), prefix=PREFIX)
    opted_in = FastAPI()
    opted_in.include_router(sqljobs.fastapi.router(jobs, allow_unauthenticated=True))
    with TestClient(opted_in) as anyone:
        assert anyone.post("/api/jobs/1/retry").status_code == 404  # mounted, no such job
    with TestClient(read_only) as anonymous:
        assert anonymous.get(f"{PREFIX}/api/jobs").status_code == 200
        assert anonymous.post(f"{PREFIX}/api/jobs/1/retry").status_code in (404, 405)
        assert anonymous.delete(f"{PREFIX}/api/jobs/1").status_code == 405
        page = anonymous.get(f"{PREFIX}/")
        assert page.status_code == 200 and '<form method="post"' not in page.text


def test_every_route_runs_the_dependency(client: TestClient) -> None:
    for method, path in [
        ("GET", "/api/jobs"),
        ("GET", "/api/stats"),
        ("GET", "/api/jobs/1"),
        ("POST", "/api/jobs/1/retry"),
        ("DELETE", "/api/jobs/1"),
        ("GET", "/"),
        ("POST", "/jobs/1/retry"),
    ]:
        response = client.request(method, PREFIX + path, headers={"X-Token": "wrong"})
        assert response.status_code == 401, (method, path)


def test_list_filters_and_pages(client: TestClient, jobs: JobQueue, tasks: dict[str, Any]) -> None:
    ids = finished_jobs(jobs, tasks)
    page = client.get(f"{PREFIX}/api/jobs").json()
    assert page["total"] == 5
    assert [j["id"] for j in page["items"]] == sorted(ids.values(), reverse=True)

    discarded = client.get(f"{PREFIX}/api/jobs", params={"state": "discarded"}).json()
    assert [j["id"] for j in discarded["items"]] == [ids["boom"]]
    assert discarded["items"][0]["last_error"] == f"RuntimeError: {EVIL}"
    several = client.get(
        f"{PREFIX}/api/jobs", params=[("state", "discarded"), ("state", "scheduled")]
    ).json()
    assert several["total"] == 2
    assert client.get(f"{PREFIX}/api/jobs", params={"queue": "mail"}).json()["total"] == 1
    assert client.get(f"{PREFIX}/api/jobs", params={"task": "ok"}).json()["total"] == 4
    assert client.get(f"{PREFIX}/api/jobs", params={"newer_than": "1h"}).json()["total"] == 5
    assert client.get(f"{PREFIX}/api/jobs", params={"older_than": "1h"}).json()["total"] == 0

    second = client.get(f"{PREFIX}/api/jobs", params={"limit": 2, "offset": 2}).json()
    assert second["total"] == 5 and second["limit"] == 2 and second["offset"] == 2
    assert [j["id"] for j in second["items"]] == [j["id"] for j in page["items"][2:4]]

    assert client.get(f"{PREFIX}/api/jobs", params={"state": "nope"}).status_code == 422
    bad_age = client.get(f"{PREFIX}/api/jobs", params={"older_than": "soon"})
    assert bad_age.status_code == 422 and "older_than" in bad_age.json()["detail"]
    assert client.get(f"{PREFIX}/api/jobs", params={"limit": 0}).status_code == 422


def test_job_detail_has_result_and_errors_with_tracebacks(
    client: TestClient, jobs: JobQueue, tasks: dict[str, Any]
) -> None:
    ids = finished_jobs(jobs, tasks)
    done = client.get(f"{PREFIX}/api/jobs/{ids['ok2']}").json()
    assert done["state"] == "completed" and done["result"] == 4 and done["args"] == {"n": 2}
    assert done["errors"] == [] and done["progress"] is None
    failed = client.get(f"{PREFIX}/api/jobs/{ids['boom']}").json()
    assert failed["state"] == "discarded" and failed["attempt"] == 1
    [error] = failed["errors"]
    assert error["type"] == "RuntimeError" and error["message"] == EVIL
    assert "Traceback (most recent call last)" in error["traceback"]
    missing = client.get(f"{PREFIX}/api/jobs/999999")
    assert missing.status_code == 404 and missing.json() == {"detail": "no job with id 999999"}


def test_stats_and_throughput(client: TestClient, jobs: JobQueue, tasks: dict[str, Any]) -> None:
    finished_jobs(jobs, tasks)
    stats = client.get(f"{PREFIX}/api/stats").json()
    queues = {q["queue"]: q for q in stats["queues"]}
    assert set(queues) == {"default", "mail"}
    assert queues["default"]["counts"]["completed"] == 3
    assert queues["default"]["counts"]["scheduled"] == 1
    assert queues["mail"]["counts"]["discarded"] == 1
    assert stats["totals"]["completed"] == 3 and stats["totals"]["running"] == 0
    assert stats["workers"] == []

    series = client.get(f"{PREFIX}/api/throughput", params={"window": "10m", "buckets": 10})
    data = series.json()
    assert data["bucket_seconds"] == 60 and len(data["points"]) == 10
    assert sum(p["completed"] for p in data["points"]) == 3
    assert sum(p["discarded"] for p in data["points"]) == 1
    assert data["points"][-1]["completed"] + data["points"][-2]["completed"] == 3
    dashboard_series = client.get(f"{PREFIX}/throughput.json", params={"window": "1h"}).json()
    assert sum(p["completed"] for p in dashboard_series["points"]) == 3


def test_retry_cancel_and_delete(client: TestClient, jobs: JobQueue, tasks: dict[str, Any]) -> None:
    ids = finished_jobs(jobs, tasks)
    retried = client.post(f"{PREFIX}/api/jobs/{ids['boom']}/retry")
    assert retried.status_code == 200
    assert retried.json()["state"] == "available" and retried.json()["max_attempts"] == 2

    cancelled = client.post(f"{PREFIX}/api/jobs/{ids['waiting']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    again = client.post(f"{PREFIX}/api/jobs/{ids['waiting']}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]

    [running] = jobs.store.claim(
        worker_id="test", queues=["mail"], limit=1, lease=timedelta(minutes=1)
    )
    assert running.id == ids["boom"]
    assert client.post(f"{PREFIX}/api/jobs/{running.id}/retry").status_code == 409
    assert client.delete(f"{PREFIX}/api/jobs/{running.id}").status_code == 409

    assert client.delete(f"{PREFIX}/api/jobs/{ids['ok0']}").status_code == 204
    assert client.get(f"{PREFIX}/api/jobs/{ids['ok0']}").status_code == 404
    assert client.delete(f"{PREFIX}/api/jobs/{ids['ok0']}").status_code == 404
    assert client.post(f"{PREFIX}/api/jobs/424242/retry").status_code == 404


def test_cross_site_mutations_are_refused(
    client: TestClient, jobs: JobQueue, tasks: dict[str, Any]
) -> None:
    job_id = tasks["ok"].enqueue(n=1)
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        response = client.post(f"{PREFIX}/api/jobs/{job_id}/cancel", headers=headers)
        assert response.status_code == 403
    assert jobs.get(job_id).state is JobState.AVAILABLE
    same = client.post(
        f"{PREFIX}/api/jobs/{job_id}/cancel", headers={"Origin": "http://testserver"}
    )
    assert same.status_code == 200


def test_openapi_documents_the_api_not_the_pages(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert f"{PREFIX}/api/jobs" in paths
    assert set(paths[f"{PREFIX}/api/jobs/{{job_id}}"]) == {"get", "delete"}
    assert "post" in paths[f"{PREFIX}/api/jobs/{{job_id}}/retry"]
    assert not [p for p in paths if not p.startswith(f"{PREFIX}/api/")]
    for model in ("JobDetail", "JobPage", "Stats", "ThroughputOut", "JobErrorOut", "Problem"):
        assert model in schema["components"]["schemas"]
    detail = paths[f"{PREFIX}/api/jobs/{{job_id}}"]["get"]["responses"]
    assert "404" in detail


# -- dashboard, server side ---------------------------------------------------------------


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def test_dashboard_pages_render_and_escape_job_data(
    client: TestClient, jobs: JobQueue, tasks: dict[str, Any]
) -> None:
    ids = finished_jobs(jobs, tasks)
    overview = client.get(f"{PREFIX}/")
    assert overview.status_code == 200
    assert "script-src 'self'" in overview.headers["content-security-policy"]
    assert (
        'data-queue="mail"' in overview.text and 'data-state-total="completed">3<' in overview.text
    )

    listing = client.get(f"{PREFIX}/jobs", params={"state": "discarded"})
    assert f'data-job-id="{ids["boom"]}"' in listing.text
    assert f'data-job-id="{ids["ok1"]}"' not in listing.text
    assert "Showing 1\u20131 of 1 job (filtered)" in listing.text

    detail = client.get(f"{PREFIX}/jobs/{ids['boom']}")
    assert detail.status_code == 200
    assert EVIL not in detail.text
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in detail.text
    assert "Traceback (most recent call last)" in detail.text
    live = client.get(f"{PREFIX}/jobs/{ids['boom']}", headers={"X-Sqljobs-Live": "1"})
    assert live.text.lstrip().startswith('<div class="job-head">') and EVIL not in live.text

    assert client.get(f"{PREFIX}/jobs/987654").status_code == 404
    script = client.get(f"{PREFIX}/static/dashboard.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith(
        "text/javascript"
    )
    assert client.get(f"{PREFIX}/static/../router.py").status_code == 404


def test_dashboard_paging(client: TestClient, jobs: JobQueue, tasks: dict[str, Any]) -> None:
    jobs.enqueue_many(None, [tasks["ok"].prepare(n=i) for i in range(55)])
    first = client.get(f"{PREFIX}/jobs", params={"queue": "default"})
    assert "Showing 1\u201350 of 55 jobs (filtered)" in first.text
    assert 'href="?queue=default&amp;page=2"' in first.text
    second = client.get(f"{PREFIX}/jobs", params={"queue": "default", "page": 2})
    assert "Showing 51\u201355 of 55 jobs" in second.text and second.text.count("data-job-id=") == 5


def test_dashboard_forms_need_the_csrf_token(
    client: TestClient, jobs: JobQueue, tasks: dict[str, Any]
) -> None:
    ids = finished_jobs(jobs, tasks)
    page = client.get(f"{PREFIX}/jobs/{ids['boom']}")
    token = csrf_token(page.text)
    assert client.cookies.get("sqljobs_csrf") == token

    url = f"{PREFIX}/jobs/{ids['boom']}/retry"
    assert client.post(url, data={}).status_code == 403
    assert client.post(url, data={"csrf_token": "forged.token"}).status_code == 403
    stranger = client.post(
        url, data={"csrf_token": token}, headers={"Origin": "https://evil.example"}
    )
    assert stranger.status_code == 403
    assert jobs.get(ids["boom"]).state is JobState.DISCARDED

    done = client.post(url, data={"csrf_token": token}, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == f"{PREFIX}/jobs/{ids['boom']}?notice=retried"
    assert jobs.get(ids["boom"]).state is JobState.AVAILABLE

    cancel = f"{PREFIX}/jobs/{ids['ok0']}/cancel"
    refused = client.post(cancel, data={"csrf_token": token})
    assert refused.status_code == 409 and "already completed" in refused.text
    deleted = client.post(
        f"{PREFIX}/jobs/{ids['ok0']}/delete", data={"csrf_token": token}, follow_redirects=False
    )
    assert deleted.status_code == 303 and deleted.headers["location"].endswith("?notice=deleted")


def test_progress_of_a_running_job_is_shown(
    client: TestClient, jobs: JobQueue, tasks: dict[str, Any]
) -> None:
    job_id = tasks["ok"].enqueue(n=5)
    jobs.store.claim(worker_id="w1", queues=["default"], limit=1, lease=timedelta(minutes=1))
    jobs.store.heartbeat(
        worker_id="w1",
        job_ids=[job_id],
        lease=timedelta(minutes=1),
        progress=[(job_id, 0.42, "<i>row 42 of 100</i>")],
    )
    detail = client.get(f"{PREFIX}/api/jobs/{job_id}").json()
    assert detail["progress"] == pytest.approx(0.42)
    assert detail["progress_message"] == "<i>row 42 of 100</i>"
    page = client.get(f"{PREFIX}/jobs/{job_id}").text
    assert '<progress max="1" value="0.42">' in page
    assert "&lt;i&gt;row 42 of 100&lt;/i&gt;" in page
    listing = client.get(f"{PREFIX}/jobs", params={"state": "running"}).text
    assert "42%" in listing


@pytest.mark.dialects(
    "sqlite", reason="the missing-table error of every database: test_store's missing tables"
)
def test_a_missing_schema_answers_503_saying_how_to_create_it(session_factory: Any) -> None:
    jobs = JobQueue(session_factory)  # no create_schema(), no migrations
    app = FastAPI()
    app.include_router(
        sqljobs.fastapi.router(jobs, dependencies=[Depends(require_token)]), prefix=PREFIX
    )
    with TestClient(app, headers=AUTH) as client:
        api = client.get(f"{PREFIX}/api/stats")
        page = client.get(f"{PREFIX}/")
        assert client.get(f"{PREFIX}/api/stats", headers={"X-Token": "no"}).status_code == 401
    assert api.status_code == 503
    assert "create_schema()" in api.json()["detail"]
    assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
    assert "create_schema()" in page.text and "migrations" in page.text
    jobs.close()
