"""``sqljobs jobs retry|cancel|delete`` by filter and ``sqljobs queues pause|resume|list``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from typer.testing import CliRunner

from sqljobs import JobState
from sqljobs.cli import _build_app
from tests.helpers import app_module

APP = "tests.integration.cli_app:jobs"


@pytest.fixture
def app(db_url: str, engine: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("SQLJOBS_APP", APP)
    with app_module("tests.integration.cli_app", db_url) as module:
        module.jobs.create_schema()
        yield module


def run(*args: str, code: int = 0, input: str | None = None) -> Any:
    result = CliRunner().invoke(_build_app(), list(args), input=input)
    assert result.exit_code == code, (args, result.exit_code, result.output, result.stderr)
    return result


def _discarded(app: ModuleType, count: int) -> list[int]:
    ids = [app.explode.enqueue(message=f"m{i}") for i in range(count)]
    app.jobs.drain(ids=ids)
    return ids


def test_bulk_retry_counts_first_asks_then_retries_the_matching_jobs(app: ModuleType) -> None:
    ids = _discarded(app, 3)
    waiting = app.bump.enqueue()

    dry = run("jobs", "retry", "--error-type", "RuntimeError", "--dry-run")
    assert dry.stdout.strip() == "3 jobs match: retry them with --yes"
    refused = run("jobs", "retry", "--task", "explode", input="n\n", code=1)
    assert "retry 3 jobs? [y/N]" in refused.stdout and "Aborted" in refused.stderr
    assert {app.jobs.get(i).state for i in ids} == {JobState.DISCARDED}

    done = run("jobs", "retry", "--task", "explode", "--batch-size", "2", input="y\n")
    assert "retried 3 jobs in 2 batch(es)" in done.stdout
    assert {app.jobs.get(i).state for i in ids} == {JobState.AVAILABLE}
    assert app.jobs.get(waiting).state is JobState.AVAILABLE


def test_bulk_cancel_and_delete_with_json_need_yes(app: ModuleType) -> None:
    ids = [app.bump.enqueue(counter_id=i) for i in range(4)]
    refused = run("jobs", "cancel", "--queue", "counters", "--json", code=2)
    assert "4 jobs match; --json does not prompt: add --yes" in refused.stderr

    out = json.loads(run("jobs", "cancel", "--queue", "counters", "--json", "--yes").stdout)
    assert out == {
        "action": "cancel",
        "dry_run": False,
        "matched": 4,
        "changed": 4,
        "skipped": {},
        "batches": 1,
    }
    deleted = json.loads(run("jobs", "delete", "--state", "cancelled", "--json", "-y").stdout)
    assert deleted["changed"] == 4
    assert app.jobs.list_jobs(limit=10) == []
    assert len(ids) == 4


def test_bulk_commands_refuse_states_they_cannot_touch(app: ModuleType) -> None:
    out = run("jobs", "delete", "--state", "running", "--yes", code=2)
    assert "running jobs cannot be deleted in bulk" in out.stderr
    assert "older than" not in run("jobs", "retry", "--older-than", "1h", "--dry-run").stdout


def test_queues_pause_resume_and_list(app: ModuleType) -> None:
    app.bump.enqueue()
    assert "queue 'counters' paused" in run("queues", "pause", "counters").stdout
    run("queues", "pause", "idle")
    listed = json.loads(run("queues", "list", "--json").stdout)
    by_name = {row["queue"]: row for row in listed}
    assert by_name["counters"] == {"queue": "counters", "paused": True, "waiting": 1, "running": 0}
    assert by_name["idle"]["paused"] is True and by_name["mail"]["paused"] is False
    assert app.jobs.paused_queues() == ["counters", "idle"]
    status = json.loads(run("status", "--json").stdout)
    assert {q["queue"]: q["paused"] for q in status["queues"]}["counters"] is True
    assert "counters (paused)" in run("status").stdout
    assert "resumed" in run("queues", "resume", "counters").stdout
    assert app.jobs.paused_queues() == ["idle"]
