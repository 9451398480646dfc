"""A job's log lines (docs/logs.md) as the REST API, the dashboard's job page and
``sqljobs jobs show`` show them, for a sync task (whose first attempt failed) and an async
task, on SQLite, PostgreSQL and MariaDB."""

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

MARKUP = "<b>bold</b> [red]red[/red]"


@pytest.fixture
def logged(app: ModuleType) -> tuple[int, int]:
    """A sync job that ran twice (its first attempt failed) and an async job, both done."""
    app.jobs.create_schema()
    sync_id: int = app.chatty.enqueue(markup=MARKUP)
    async_id: int = app.achatty.enqueue()
    app.jobs.drain()
    app.jobs.drain(include_scheduled=True)
    return sync_id, async_id


@pytest.fixture
def client(app: ModuleType) -> Iterator[TestClient]:
    web = FastAPI()
    web.include_router(sqljobs.fastapi.router(app.jobs, read_only=True), prefix="/jobs")
    with TestClient(web) as test_client:
        yield test_client


SYNC_LINES = [
    (1, "INFO", "sqljobs.task", f"attempt 1: {MARKUP}"),
    (1, "WARNING", "tests.cli_app", "plain logging, attempt 1"),
    (2, "INFO", "sqljobs.task", f"attempt 2: {MARKUP}"),
    (2, "WARNING", "tests.cli_app", "plain logging, attempt 2"),
]
ASYNC_LINES = [
    (1, "INFO", "sqljobs.task", "from an async task"),
    (1, "ERROR", "tests.cli_app", "async plain logging"),
]


def rows(logs: list[dict[str, Any]]) -> list[tuple[int, str, str, str]]:
    return [(line["attempt"], line["level"], line["logger"], line["message"]) for line in logs]


def test_the_job_api_returns_the_log_lines_of_every_attempt(
    client: TestClient, logged: tuple[int, int]
) -> None:
    sync_id, async_id = logged
    assert rows(client.get(f"/jobs/api/jobs/{sync_id}").json()["logs"]) == SYNC_LINES
    assert rows(client.get(f"/jobs/api/jobs/{async_id}").json()["logs"]) == ASYNC_LINES


def test_the_dashboard_job_page_shows_the_lines_escaped(
    client: TestClient, logged: tuple[int, int]
) -> None:
    sync_id, async_id = logged
    page = client.get(f"/jobs/jobs/{sync_id}").text
    assert 'id="job-logs"' in page and "4 lines" in page
    assert page.count('class="log-line') == 4 and 'data-attempt="2"' in page
    assert "attempt 1: &lt;b&gt;bold&lt;/b&gt;" in page and MARKUP not in page
    assert "async plain logging" in client.get(f"/jobs/jobs/{async_id}").text


def test_jobs_show_prints_the_lines_and_json_has_them(
    app: ModuleType, cli: Cli, logged: tuple[int, int]
) -> None:
    sync_id, async_id = logged
    assert rows(cli.json("jobs", "show", str(sync_id))["logs"]) == SYNC_LINES
    assert rows(cli.json("jobs", "show", str(async_id))["logs"]) == ASYNC_LINES
    shown = cli("jobs", "show", str(sync_id), "--app", APP).stdout
    assert "logs (4 lines)" in shown
    assert f"sqljobs.task: attempt 2: {MARKUP}" in shown  # markup shown, not applied
    assert "WARNING tests.cli_app: plain logging, attempt 1" in shown


def test_a_job_that_logged_nothing_has_no_logs_section(app: ModuleType, client: TestClient) -> None:
    app.jobs.create_schema()
    job_id = app.bump.enqueue(counter_id=1)
    app.jobs.drain()
    assert client.get(f"/jobs/api/jobs/{job_id}").json()["logs"] == []
    assert 'id="job-logs"' not in client.get(f"/jobs/jobs/{job_id}").text
