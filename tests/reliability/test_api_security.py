"""The REST API and the dashboard under hostile input: schemathesis against the OpenAPI
schema (no 5xx, responses match the schema), SQL-injection and XSS payloads in filters and
in job data, and every mutating route refused without auth or without a valid CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

import sqljobs.fastapi
from sqljobs import Backoff, JobQueue, JobState
from tests.reliability.harness import env_int

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(600)]

PREFIX = "/admin/jobs"
EXAMPLES = env_int("SQLJOBS_SCHEMATHESIS_EXAMPLES", 25, full=60)
AUTH = {"X-Token": "let-me-in"}
SQL_PAYLOADS = [
    "' OR '1'='1",
    "' OR 1=1 --",
    "'; DROP TABLE sqljobs_jobs; --",
    '" OR ""="',
    "%' OR '1'='1' --",
    "\\'; DELETE FROM sqljobs_jobs; --",
    "1; SELECT pg_sleep(5)",
    "' UNION SELECT id, hostname FROM sqljobs_workers --",
    "_%",
    "\x00",
]
XSS_PAYLOADS = [
    "<script>window.__xss=1</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    "'><svg/onload=alert(1)>",
    "{{7*7}}{% raw %}",
]
RAW_MARKUP = re.compile(r"<script>window\.__xss|<img src=x|<svg/onload", re.IGNORECASE)


def require_token(x_token: str | None = Header(None)) -> None:
    if x_token != AUTH["X-Token"]:
        raise HTTPException(401, "who are you?")


@pytest.fixture
def seeded(jobs: JobQueue) -> dict[str, int]:
    """Jobs in every state whose queue, arguments, results and errors carry payloads."""
    evil_queue = "q'; DROP TABLE sqljobs_jobs; --<script>window.__xss=1</script>"

    @jobs.task(name="echo")
    def echo(text: str) -> str:
        return text

    @jobs.task(name="fail<img src=x onerror=alert(1)>", queue=evil_queue, max_attempts=1)
    def fail(text: str) -> None:
        raise RuntimeError(text)

    @jobs.task(name="later", backoff=Backoff(base=3600, jitter=0))
    def later(text: str) -> None:
        raise RuntimeError(text)

    ids: dict[str, int] = {}
    for i, payload in enumerate([p for p in SQL_PAYLOADS if "\x00" not in p] + XSS_PAYLOADS):
        ids[f"echo{i}"] = echo.enqueue(text=payload)
        ids[f"fail{i}"] = fail.enqueue(text=payload)
    ids["later"] = later.enqueue(text=XSS_PAYLOADS[0])
    jobs.drain()
    ids["waiting"] = echo.configure(delay=3600).enqueue(text=XSS_PAYLOADS[1])
    ids["cancelled"] = echo.configure(delay=3600).enqueue(text=SQL_PAYLOADS[2])
    jobs.cancel(ids["cancelled"])
    return ids


@pytest.fixture
def app(jobs: JobQueue, seeded: dict[str, int]) -> FastAPI:
    app = FastAPI()
    app.include_router(
        sqljobs.fastapi.router(jobs, dependencies=[Depends(require_token)]), prefix=PREFIX
    )
    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, headers=AUTH) as test_client:
        yield test_client


def test_schemathesis_no_server_errors_and_responses_match_the_schema(app: FastAPI) -> None:
    """Every operation of the OpenAPI schema, fuzzed (driven by hand: schemathesis' pytest
    plugin does not run under pytest 9)."""
    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    fuzzed = []
    for result in api.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # Err has no ok(); raises here

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def fuzz(case: Any) -> None:
            # Ages (older_than, newer_than, window) are free text in the schema and parsed
            # by the route, which answers 422 for text that is no age: documented, so
            # "schema-valid request rejected" does not apply to them.
            case.call_and_validate(
                headers=AUTH, excluded_checks=[schemathesis.checks.positive_data_acceptance]
            )

        fuzz()
        fuzzed.append(operation.label)
    # 4 reading routes, retry, cancel, delete; bulk, pause and resume a queue (issue 15);
    # a job graph and its cancel (issue 14)
    assert len(fuzzed) == 12, fuzzed


def test_throughput_with_a_single_bucket(client: TestClient) -> None:
    """Was a 500: CASE with no WHEN for a single bucket."""
    for window in ("1s", "1h"):
        response = client.get(f"{PREFIX}/api/throughput", params={"buckets": 1, "window": window})
        assert response.status_code == 200, response.text
        assert len(response.json()["points"]) == 1


def test_dashboard_filter_with_a_nul_byte(dialect: str, client: TestClient) -> None:
    # PostgreSQL refuses NUL in text; the store answers "no match" before asking it.
    for field in ("queue", "task"):
        page = client.get(f"{PREFIX}/jobs", params={field: "\x00"})
        assert page.status_code == 200, page.text
        assert "of 0 jobs" in page.text or "No job" in page.text


def test_sql_injection_in_filters_finds_nothing_and_harms_nothing(
    dialect: str, client: TestClient, jobs: JobQueue, seeded: dict[str, int]
) -> None:
    before = sum(jobs.counts().values())
    for payload in SQL_PAYLOADS:
        for field in ("queue", "task", "older_than", "newer_than"):
            response = client.get(f"{PREFIX}/api/jobs", params={field: payload})
            assert response.status_code in (200, 422), (field, payload, response.text)
            if response.status_code == 200:
                assert response.json()["total"] == 0, (field, payload)
            page = client.get(f"{PREFIX}/jobs", params={field: payload})
            assert page.status_code in (200, 422), (field, payload)
        state = client.get(f"{PREFIX}/api/jobs", params={"state": payload})
        assert state.status_code == 422
        by_id = client.get(f"{PREFIX}/api/jobs/{quote(payload, safe='')}")
        assert by_id.status_code in (404, 422)
    assert sum(jobs.counts().values()) == before  # nothing dropped or deleted
    # The payload that really is a queue name is matched literally, as data.
    evil_queue = next(q for q, _s in jobs.counts() if q.startswith("q'"))
    found = client.get(f"{PREFIX}/api/jobs", params={"queue": evil_queue}).json()
    assert found["total"] == len([k for k in seeded if k.startswith("fail")])


def test_xss_payloads_in_job_data_and_filters_are_escaped(
    client: TestClient, jobs: JobQueue, seeded: dict[str, int]
) -> None:
    pages = [f"{PREFIX}/", f"{PREFIX}/jobs", f"{PREFIX}/jobs?state=discarded"]
    pages += [f"{PREFIX}/jobs/{job_id}" for job_id in seeded.values()]
    pages += [f"{PREFIX}/jobs?queue={p}" for p in XSS_PAYLOADS]
    pages += [f"{PREFIX}/jobs?task={p}" for p in XSS_PAYLOADS]
    pages += [f"{PREFIX}/?notice={p}" for p in XSS_PAYLOADS]
    for url in pages:
        response = client.get(url)
        assert response.status_code in (200, 422), (url, response.status_code)
        assert not RAW_MARKUP.search(response.text), url
    detail = client.get(f"{PREFIX}/jobs/{seeded['fail0']}").text
    assert "&lt;" in detail  # the payloads are there, escaped
    # Job data is shown as text, never evaluated as a template.
    template = next(
        job_id
        for label, job_id in seeded.items()
        if label.startswith("echo") and jobs.get(job_id).args["text"].startswith("{{7*7}}")
    )
    assert "{{7*7}}" in client.get(f"{PREFIX}/jobs/{template}").text
    api = client.get(f"{PREFIX}/api/jobs/{seeded['fail0']}")
    assert api.headers["content-type"].startswith("application/json")


def mutating_routes(job_id: int) -> list[tuple[str, str]]:
    return [
        ("POST", f"{PREFIX}/api/jobs/{job_id}/retry"),
        ("POST", f"{PREFIX}/api/jobs/{job_id}/cancel"),
        ("DELETE", f"{PREFIX}/api/jobs/{job_id}"),
        ("POST", f"{PREFIX}/jobs/{job_id}/retry"),
        ("POST", f"{PREFIX}/jobs/{job_id}/cancel"),
        ("POST", f"{PREFIX}/jobs/{job_id}/delete"),
    ]


def test_every_mutating_route_is_refused_without_auth(
    app: FastAPI, jobs: JobQueue, seeded: dict[str, int]
) -> None:
    job_id = seeded["waiting"]
    with TestClient(app) as anonymous:
        for wrong in ({}, {"X-Token": ""}, {"X-Token": "let-me-in "}, {"X-Token": "' OR 1=1"}):
            for method, url in mutating_routes(job_id):
                response = anonymous.request(method, url, headers=wrong)
                assert response.status_code == 401, (method, url, wrong)
    assert jobs.get(job_id).state is JobState.SCHEDULED


def test_dashboard_mutations_need_a_valid_csrf_token(
    client: TestClient, app: FastAPI, jobs: JobQueue, seeded: dict[str, int]
) -> None:
    job_id = seeded["waiting"]
    page = client.get(f"{PREFIX}/jobs/{job_id}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    nonce, _, signature = token.partition(".")
    forged = [
        "",
        "forged",
        f"{nonce}.",
        f"{nonce}.{'0' * len(signature)}",
        f"other{nonce}.{signature}",
        token.upper(),
    ]
    # A token signed by another router's secret (another app) is worthless here.
    other = FastAPI()
    other.include_router(
        sqljobs.fastapi.router(jobs, dependencies=[Depends(require_token)]), prefix=PREFIX
    )
    with TestClient(other, headers=AUTH) as elsewhere:
        foreign_page = elsewhere.get(f"{PREFIX}/jobs/{job_id}")
        foreign = re.search(r'name="csrf_token" value="([^"]+)"', foreign_page.text).group(1)  # type: ignore[union-attr]
    for _method, url in mutating_routes(job_id)[3:]:
        for bad in forged:
            assert client.post(url, data={"csrf_token": bad}).status_code == 403, (url, bad)
        # The right field but a cookie that does not match (or is missing) is refused too.
        with TestClient(app, headers=AUTH) as fresh:
            assert fresh.post(url, data={"csrf_token": token}).status_code == 403
            fresh.cookies.set("sqljobs_csrf", foreign)
            assert fresh.post(url, data={"csrf_token": foreign}).status_code == 403
        cross = client.post(
            url, data={"csrf_token": token}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert cross.status_code == 403
    for method, url in mutating_routes(job_id)[:3]:
        # The JSON API has no cookie-borne session of its own; it refuses cross-site callers.
        response = client.request(method, url, headers={"Origin": "https://evil.example"})
        assert response.status_code == 403, (method, url)
    assert jobs.get(job_id).state is JobState.SCHEDULED
