"""The README's first example, as written: its two files in a fresh directory, then its two
commands. The enqueue script stores two jobs; the worker command runs the due one and stops
cleanly on SIGTERM; commands that import the tasks module enqueue nothing."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.helpers import eventually

ROOT = Path(__file__).resolve().parents[2]
SQLJOBS = str(Path(sys.executable).parent / "sqljobs")


def readme_files() -> dict[str, str]:
    """Each ```python block of the README that starts with a ``# path.py`` comment."""
    blocks = re.findall(r"```python\n# (\S+\.py)\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return {path: text for path, text in blocks}


def readme_commands() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## A first example", 1)[1]
    section = section.split("\n## ", 1)[0]
    [bash] = [b for b in re.findall(r"```bash\n(.*?)```", section, re.S) if "sqljobs worker" in b]
    return [line for line in bash.splitlines() if line.strip()]


def statuses(app_dir: Path) -> dict[int, str]:
    with sqlite3.connect(app_dir / "app.db") as db:
        return dict(db.execute("SELECT id, status FROM records").fetchall())


def job_count(app_dir: Path) -> int:
    with sqlite3.connect(app_dir / "app.db") as db:
        return int(db.execute("SELECT count(*) FROM sqljobs_jobs").fetchone()[0])


def test_the_readme_first_example_runs_as_written(tmp_path: Path) -> None:
    files = readme_files()
    assert {"myapp/jobs.py", "myapp/enqueue.py"} <= files.keys()
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    enqueue, worker = readme_commands()
    assert (enqueue, worker) == (
        "python -m myapp.enqueue",
        "sqljobs worker myapp.jobs:jobs --concurrency 8",
    )
    env = {**os.environ, "PYTHONPATH": ""}

    subprocess.run([sys.executable, *enqueue.split()[1:]], cwd=tmp_path, env=env, check=True)
    assert job_count(tmp_path) == 2
    assert statuses(tmp_path) == {42: "new", 43: "new"}

    status = subprocess.run(
        [SQLJOBS, "status", "--app", "myapp.jobs:jobs"], cwd=tmp_path, env=env, check=True
    )
    assert status.returncode == 0 and job_count(tmp_path) == 2  # importing enqueues nothing

    proc = subprocess.Popen(
        [SQLJOBS, *worker.split()[1:]],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        eventually(lambda: statuses(tmp_path)[42] == "done", timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert statuses(tmp_path) == {42: "done", 43: "new"}  # 43 is due in a minute
    assert "stopped: 1 completed" in out
