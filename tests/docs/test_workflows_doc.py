"""docs/workflows.md's examples as written: each ```python block is a whole file beside the
README's myapp/jobs.py, and running it prints what the doc says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.docs import snippets
from tests.docs.snippets import ROOT

WORKFLOWS_DOC = ROOT / "docs" / "workflows.md"


def run(tmp_path: Path, module: str) -> str:
    return snippets.run_module(tmp_path, [WORKFLOWS_DOC], module)


def test_every_workflows_snippet_is_a_whole_file() -> None:
    text = WORKFLOWS_DOC.read_text()
    assert snippets.unmarked(text) == []
    assert set(snippets.files(text)) == {
        "myapp/limits.py",
        "myapp/debounce.py",
        "graphs_example.py",
        "myapp/orders.py",
    }


def test_the_key_limits_example_gives_keys_from_arguments_and_from_enqueue(
    tmp_path: Path,
) -> None:
    assert run(tmp_path, "myapp.limits") == (
        """['myapp.limits.sync_mailbox:"account-9"', 'myapp.limits.sync_mailbox:{"user_id":1}']\n"""
    )


def test_the_debounce_example_runs_once_with_the_last_arguments(tmp_path: Path) -> None:
    assert run(tmp_path, "myapp.debounce") == "indexing 7: hello\n"


def test_the_job_graphs_example_runs_as_written(tmp_path: Path) -> None:
    files = snippets.files(snippets.section(WORKFLOWS_DOC, "Job graphs"))
    (tmp_path / "graphs_example.py").write_text(files["graphs_example.py"])
    done = subprocess.run(
        [sys.executable, "graphs_example.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "completed nightly: 9 rows"


def test_the_steps_example_runs_each_step_once_and_pays_the_order(tmp_path: Path) -> None:
    assert run(tmp_path, "myapp.orders").splitlines() == [
        "reserve completed 1 1",
        "charge completed 1 {'charge_id': 'ch_1', 'idempotency_key': 'order-1'}",
        "mark-paid completed 1 paid",
        "paid",
    ]
