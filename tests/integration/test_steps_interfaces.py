"""A job's durable steps as the CLI (``jobs show``) and the REST API show them: name, state,
attempts, duration and error, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import sqljobs.fastapi
from tests.integration.test_cli import APP, Cli, app, cli

__all__ = ["app", "cli"]  # fixtures

MARKUP = "<b>courier</b> [red]down[/red]"


@pytest.fixture
def half_done(app: ModuleType) -> int:
    """A job whose first step completed and whose second failed (its retry waits)."""
    app.jobs.create_schema()
    job_id: int = app.stepped.enqueue(counter_id=2)
    app.jobs.drain()
    return job_id


def test_jobs_show_lists_the_steps_with_state_attempts_duration_and_error(
    app: ModuleType, cli: Cli, half_done: int
) -> None:
    detail = cli.json("jobs", "show", str(half_done))
    steps = detail["steps"]
    assert [(s["name"], s["state"], s["attempts"]) for s in steps] == [
        ("charge", "completed", 1),
        ("ship", "failed", 1),
    ]
    assert steps[0]["result"] == {"charged": 2} and steps[0]["error"] is None
    assert all(isinstance(s["duration"], float) for s in steps)
    assert steps[1]["error"]["type"] == "RuntimeError"
    assert steps[1]["error"]["message"] == MARKUP

    table = cli("jobs", "show", str(half_done), "--app", APP).stdout
    assert "steps" in table and "charge" in table and "completed" in table
    assert "ship" in table and "failed" in table
    assert f"RuntimeError: {MARKUP}" in table  # markup in step errors is shown, not applied

    app.jobs.drain(include_scheduled=True)
    after = cli.json("jobs", "show", str(half_done))["steps"]
    assert [(s["name"], s["state"], s["attempts"]) for s in after] == [
        ("charge", "completed", 1),
        ("ship", "completed", 2),
    ]


@pytest.fixture
def client(app: ModuleType) -> Iterator[TestClient]:
    web = FastAPI()
    web.include_router(sqljobs.fastapi.router(app.jobs, read_only=True), prefix="/jobs")
    with TestClient(web) as test_client:
        yield test_client


def test_the_job_api_returns_its_steps_and_the_dashboard_page_shows_them_escaped(
    client: TestClient, half_done: int
) -> None:
    body: dict[str, Any] = client.get(f"/jobs/api/jobs/{half_done}").json()
    assert [(s["name"], s["position"], s["state"], s["attempts"]) for s in body["steps"]] == [
        ("charge", 0, "completed", 1),
        ("ship", 1, "failed", 1),
    ]
    assert body["steps"][1]["error"]["message"] == MARKUP
    assert body["steps"][0]["duration"] > 0

    page = client.get(f"/jobs/jobs/{half_done}").text
    assert 'id="job-steps"' in page and 'data-step="charge"' in page
    assert "&lt;b&gt;courier&lt;/b&gt;" in page and MARKUP not in page


def test_a_job_without_steps_has_an_empty_step_list(app: ModuleType, client: TestClient) -> None:
    app.jobs.create_schema()
    job_id = app.bump.enqueue(counter_id=1)
    app.jobs.drain()
    assert client.get(f"/jobs/api/jobs/{job_id}").json()["steps"] == []
    assert 'id="job-steps"' not in client.get(f"/jobs/jobs/{job_id}").text
