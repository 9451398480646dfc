"""docs/workflows.md's job-graph example runs as written and prints what its comment says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.docs import snippets
from tests.docs.snippets import ROOT

WORKFLOWS_DOC = ROOT / "docs" / "workflows.md"


def test_the_job_graphs_example_runs_as_written(tmp_path: Path) -> None:
    files = snippets.files(snippets.section(WORKFLOWS_DOC, "Job graphs"))
    (tmp_path / "graphs_example.py").write_text(files["graphs_example.py"])
    run = subprocess.run(
        [sys.executable, "graphs_example.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "completed nightly: 9 rows"
