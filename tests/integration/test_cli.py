"""The ``sqljobs`` command against a real database: output, --json and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from typer.testing import CliRunner

from sqljobs import JobState
from sqljobs.cli import _build_app
from tests.helpers import add_counters, app_module, counter_total, eventually
from tests.processes import ROOT, WorkerProcesses

APP = "tests.integration.cli_app:jobs"


@pytest.fixture
def app(db_url: str, engine: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.delenv("SQLJOBS_APP", raising=False)
    with app_module("tests.integration.cli_app", db_url) as module:
        add_counters(module.SessionLocal, 3)
        yield module


class Cli:
    def __init__(self) -> None:
        self.runner = CliRunner()
        self.command = _build_app()

    def __call__(self, *args: str, code: int = 0, env: dict[str, str] | None = None) -> Any:
        result = self.runner.invoke(self.command, list(args), env=env)
        assert result.exit_code == code, (args, result.exit_code, result.output, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json", "--app", APP).stdout)


@pytest.fixture
def cli() -> Cli:
    return Cli()


def test_create_schema_finds_the_app_by_argument_option_or_environment(
    app: ModuleType, cli: Cli
) -> None:
    assert "sqljobs tables are ready" in cli("create-schema", APP).stdout
    assert "sqljobs tables are ready" in cli("create-schema", "--app", APP).stdout
    assert "ready" in cli("create-schema", env={"SQLJOBS_APP": APP}).stdout
    assert cli("status", env={"SQLJOBS_APP": APP}).exit_code == 0

    missing = cli("status", code=2)
    assert "error: say where your JobQueue is" in missing.stderr
    wrong = cli("status", "--app", "tests.integration.cli_app:not_a_queue", code=2)
    assert "is a str, not a sqljobs.JobQueue" in wrong.stderr
    assert "cannot import" in cli("status", "--app", "no_such_module:jobs", code=2).stderr


def test_enqueue_then_inspect_with_status_list_and_show(app: ModuleType, cli: Cli) -> None:
    cli("create-schema", APP)
    out = cli("enqueue", "bump", "--args", '{"counter_id": 2}', "--app", APP).stdout
    bump_id = int(out.strip().removeprefix("enqueued job "))
    boom = cli.json("enqueue", "explode", "--args", '{"message": "<b>no</b> [red]x[/red]"}')
    assert boom["state"] == "available" and boom["queue"] == "mail"
    later = cli.json("enqueue", "bump", "--delay", "1h", "--queue", "slow")
    assert later["state"] == "scheduled" and later["queue"] == "slow"
    app.jobs.drain()
    assert counter_total(app.SessionLocal) == 1

    status = cli.json("status")
    queues = {q["queue"]: q["counts"] for q in status["queues"]}
    assert queues["counters"]["completed"] == 1
    assert queues["mail"]["discarded"] == 1
    assert queues["slow"]["scheduled"] == 1
    assert status["totals"]["completed"] == 1 and status["workers"] == []
    table = cli("status", "--app", APP).stdout
    assert "Jobs per queue and state" in table and "counters" in table and "mail" in table
    assert "no worker is running" in table

    listing = cli.json("jobs", "list")
    assert listing["total"] == 3
    assert [j["id"] for j in listing["items"]] == [later["id"], boom["id"], bump_id]
    failed = cli.json("jobs", "list", "--state", "discarded")
    assert [j["id"] for j in failed["items"]] == [boom["id"]]
    assert failed["items"][0]["last_error"] == "RuntimeError: <b>no</b> [red]x[/red]"
    two = cli.json("jobs", "list", "--state", "completed", "--state", "scheduled")
    assert two["total"] == 2
    assert cli.json("jobs", "list", "--task", "bump", "--queue", "slow")["total"] == 1
    assert cli.json("jobs", "list", "--newer-than", "10m")["total"] == 3
    assert cli.json("jobs", "list", "--older-than", "10m")["total"] == 0
    paged = cli.json("jobs", "list", "--limit", "1", "--offset", "1")
    assert paged["total"] == 3 and [j["id"] for j in paged["items"]] == [boom["id"]]
    table = cli("jobs", "list", "--app", APP).stdout
    assert "explode" in table and "discarded" in table and "jobs 1-3 of 3" in table
    assert "<b>no</b> [red]x[/red]" in table  # rich markup in job data is shown, not applied

    shown = cli("jobs", "show", str(boom["id"]), "--app", APP).stdout
    assert "attempt 1 failed" in shown and "RuntimeError: <b>no</b> [red]x[/red]" in shown
    assert "Traceback (most recent call last)" in shown and "raise RuntimeError" in shown
    detail = cli.json("jobs", "show", str(bump_id))
    assert detail["result"] == 2 and detail["state"] == "completed" and detail["errors"] == []
    assert "progress" in detail
    assert "result" in cli("jobs", "show", str(bump_id), "--app", APP).stdout


def test_usage_errors_and_missing_things_have_their_own_exit_codes(
    app: ModuleType, cli: Cli
) -> None:
    cli("create-schema", APP)
    assert "no task named 'nope'" in cli("enqueue", "nope", "--app", APP, code=3).stderr
    assert "not valid JSON" in cli("enqueue", "bump", "--args", "{", "--app", APP, code=2).stderr
    assert "JSON object" in cli("enqueue", "bump", "--args", "[1]", "--app", APP, code=2).stderr
    bad_args = cli("enqueue", "bump", "--args", '{"nope": 1}', "--app", APP, code=2)
    assert bad_args.stderr.startswith("error: ")
    assert "no job with id 404" in cli("jobs", "show", "404", "--app", APP, code=3).stderr
    assert "unknown state 'wat'" in cli("jobs", "list", "-s", "wat", "--app", APP, code=2).stderr
    assert "not an age" in cli("jobs", "list", "--older-than", "x", "--app", APP, code=2).stderr
    cli("jobs", "show", "abc", "--app", APP, code=2)  # typer's own usage error
    assert (
        "only finished jobs"
        in cli("prune", "--older-than", "1d", "--state", "running", "--app", APP, code=2).stderr
    )


def test_retry_cancel_and_prune(app: ModuleType, cli: Cli) -> None:
    cli("create-schema", APP)
    boom = app.explode.enqueue(message="down")
    waiting = app.bump.enqueue(delay=3600)
    running = app.bump.enqueue(queue="busy")
    app.jobs.drain(queues=["mail"])
    app.jobs.store.claim(worker_id="t", queues=["busy"], limit=1, lease=timedelta(minutes=1))

    assert cli("retry", str(boom), "--app", APP).stdout == f"job {boom} retried: now available\n"
    assert app.jobs.get(boom).state is JobState.AVAILABLE
    refused = cli("retry", str(running), "--app", APP, code=4)
    assert f"job {running} is running" in refused.stderr
    mixed = cli("retry", str(boom), "777", "--app", APP, code=3)
    assert "retried" in mixed.stdout and "no job with id 777" in mixed.stderr

    assert "now cancelled" in cli("cancel", str(waiting), "--app", APP).stdout
    assert "already cancelled" in cli("cancel", str(waiting), "--app", APP, code=4).stderr
    assert "now cancelled" in cli("cancel", str(running), "--app", APP).stdout

    app.jobs.drain()
    assert cli.json("prune", "--older-than", "1h") == {"deleted": 0}
    pruned = cli("prune", "--older-than", "0s", "--state", "cancelled", "--app", APP)
    assert pruned.stdout == "deleted 2 finished jobs\n"
    assert cli.json("jobs", "list")["total"] == 1


def test_retry_of_a_unique_job_whose_key_is_held_exits_refused(app: ModuleType, cli: Cli) -> None:
    """Issue 12, case 9."""
    cli("create-schema", APP)
    old = app.explode_once.enqueue(message="down")
    app.jobs.drain(ids=[old])
    new = app.explode_once.enqueue(message="down")

    refused = cli("retry", str(old), "--app", APP, code=4)
    assert f"job {new} (available) holds its unique key" in refused.stderr
    assert app.jobs.get(old).state is JobState.DISCARDED


@pytest.mark.slow
@pytest.mark.dialects("sqlite", reason="output and exit codes do not depend on the database")
def test_worker_process_prints_summaries_and_json_logs(
    app: ModuleType, db_url: str, tmp_path: Path
) -> None:
    app.jobs.create_schema()
    for _ in range(3):
        app.bump.enqueue()
    app.explode.enqueue(message="kaput")
    with WorkerProcesses(db_url, tmp_path) as workers:  # the app comes from SQLJOBS_APP
        worker = workers.start(
            "--queues", "counters,mail", "--no-live", "--summary-interval", "0.5",
            "--log-format", "json", "--poll-interval", "0.05",
            env={"SQLJOBS_APP": APP}, separate_stderr=True,
        )  # fmt: skip
        eventually(lambda: counter_total(app.SessionLocal) == 3, timeout=30)
        eventually(lambda: app.jobs.counts().get(("mail", JobState.DISCARDED)) == 1, timeout=30)
        eventually(lambda: app.jobs.store.list_workers(), timeout=10)
        code = worker.stop(timeout=30)
    out, err = worker.output(), worker.errors()
    assert code == 0, err
    assert "running queues counters,mail with concurrency 4, prefetch automatic" in out
    last = out.splitlines()[-1]
    assert " stopped: 3 completed, 0 failed (to retry), 1 discarded, 0 cancelled" in last
    summaries = [line for line in out.splitlines() if "rate=" in line]
    assert (
        summaries
        and "running=" in summaries[-1]
        and "discarded=1" in summaries[-1]
        and "done=3" in summaries[-1]
    )
    attempts = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    by_outcome = {entry["outcome"]: entry for entry in attempts if "outcome" in entry}
    assert set(by_outcome) >= {"completed", "discarded"}
    for entry in by_outcome.values():
        assert {"job_id", "task", "attempt", "duration", "queue", "level", "message"} <= set(entry)
    assert by_outcome["discarded"]["error"] == "RuntimeError: kaput"


@pytest.mark.slow
@pytest.mark.dialects("sqlite", reason="output and exit codes do not depend on the database")
def test_exit_codes_of_a_real_process(app: ModuleType, db_url: str) -> None:
    app.jobs.create_schema()
    env = {**os.environ, "SQLJOBS_TEST_DATABASE_URL": db_url, "PYTHONPATH": str(ROOT)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sqljobs", *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    assert run("jobs", "show", "5", "--app", APP).returncode == 3
    nothing = run("status")
    assert nothing.returncode == 2 and nothing.stderr.startswith("error: ")
    assert run("jobs", "list", "--app", APP, "--json").returncode == 0
    assert run("frobnicate").returncode == 2


@pytest.mark.dialects(
    "sqlite", reason="the option reaches the worker the same way on every database"
)
@pytest.mark.slow
def test_worker_prune_after_option_reaches_the_worker(
    app: ModuleType, db_url: str, tmp_path: Path
) -> None:
    """The option's path is the same on every database; pruning itself is tested on each by
    the store tests."""
    app.jobs.create_schema()
    app.bump.enqueue()
    app.jobs.drain()
    assert len(app.jobs.list_jobs()) == 1
    with WorkerProcesses(db_url, tmp_path, app=None) as workers:
        worker = workers.start(
            "--app", APP, "--no-live", "--prune-after", "0s", "--prune-interval", "0.1",
            "--poll-interval", "0.05", separate_stderr=True,
        )  # fmt: skip
        eventually(lambda: app.jobs.list_jobs() == [], timeout=30)
        code = worker.stop(timeout=30)
    err = worker.errors()
    assert code == 0, err
    assert "pruned 1 finished job(s) older than 0:00:00" in err


def test_worker_refuses_a_prune_after_that_is_no_age(app: ModuleType, cli: Cli) -> None:
    refused = cli("worker", "--app", APP, "--prune-after", "soon", code=2)
    assert "--prune-after: 'soon' is not an age (try 30s, 15m, 2h or 7d), or 'never'" in (
        refused.stderr
    )
