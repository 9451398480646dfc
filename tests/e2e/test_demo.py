"""The README's first command: ``bash scripts/demo --once`` runs to completion."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_command_runs_to_completion_with_once() -> None:
    # A smaller run than the default 300 jobs keeps the suite quick; the path is the same.
    result = subprocess.run(
        ["bash", "scripts/demo", "--once", "--jobs", "60"],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "every completed refresh was applied exactly once" in out
    assert "every async check was applied exactly once: 12 of 12" in out
    assert "jobs/s" in out
    assert "FAILED" not in out
