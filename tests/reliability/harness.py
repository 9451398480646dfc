"""Shared pieces of the reliability suite: the app bound to this test's database, worker
subprocesses, and the tally that says whether any job was lost or applied twice."""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from sqljobs import JobQueue, JobState
from tests.conftest import Counter
from tests.helpers import add_counters, eventually
from tests.processes import ROOT as ROOT  # re-exported for the scenarios
from tests.processes import WorkerProcess as WorkerProcess
from tests.processes import WorkerProcesses

APP = "tests.reliability.app"


#: ``SQLJOBS_LONG=1`` runs every scenario at its full size (docs/reliability.md, "Sizes").
LONG = os.environ.get("SQLJOBS_LONG", "") == "1"


def env_int(name: str, default: int, full: int) -> int:
    """A scenario size: ``default`` in CI, ``full`` in long mode, ``$name`` over both."""
    return int(os.environ.get(name, full if LONG else default))


def load_app(db_url: str) -> Any:
    """Import the worker app bound to ``db_url`` and give it fresh tables."""
    os.environ["SQLJOBS_TEST_DATABASE_URL"] = db_url
    sys.modules.pop(APP, None)
    module = importlib.import_module(APP)
    module.jobs.create_schema()
    module.metadata.drop_all(module.engine)
    module.metadata.create_all(module.engine)
    add_counters(module.SessionLocal, 11)
    return module


class Workers(WorkerProcesses):
    """``python -m sqljobs worker tests.reliability.app:jobs --no-live ...`` processes, each
    with its output in a file; the fixture kills the survivors at the end of the test."""

    def __init__(self, db_url: str, tmp_path: Path) -> None:
        super().__init__(db_url, tmp_path, "--no-live", app=f"{APP}:jobs")


@dataclass
class Tally:
    jobs: int
    completed: int
    not_finished: int
    running: int
    lost: int
    duplicated: int
    counter: int
    failed_attempts: int
    rescued_attempts: int


def tally(app: Any, expected_keys: int) -> Tally:
    """Compare the job table, the ledger and the counters with what was enqueued."""
    jobs: JobQueue = app.jobs
    counts = jobs.counts()
    total = sum(counts.values())
    completed = sum(n for (_q, s), n in counts.items() if s is JobState.COMPLETED)
    running = sum(n for (_q, s), n in counts.items() if s is JobState.RUNNING)
    not_finished = sum(n for (_q, s), n in counts.items() if not s.is_finished)
    with app.engine.connect() as conn:
        per_key = (
            select(app.ledger.c.key, func.count().label("n")).group_by(app.ledger.c.key).subquery()
        )
        applied = conn.execute(select(func.count()).select_from(per_key)).scalar_one()
        duplicated = conn.execute(
            select(func.count()).select_from(per_key).where(per_key.c.n > 1)
        ).scalar_one()
    failed = rescued = 0
    for job in jobs.list_jobs(limit=max(total, 1)):
        failed += len(job.errors)
        rescued += sum(e.type == "LeaseExpired" for e in job.errors)
    return Tally(
        jobs=total,
        completed=completed,
        not_finished=not_finished,
        running=running,
        lost=expected_keys - applied,
        duplicated=duplicated,
        counter=apply_counters(app),
        failed_attempts=failed,
        rescued_attempts=rescued,
    )


def registered(app: Any, worker: WorkerProcess) -> bool:
    """True once ``worker`` has started and registered itself (its signal handlers are set)."""
    assert worker.alive(), worker.output()[-3000:]
    return any(row["pid"] == worker.pid for row in app.jobs.store.list_workers())


def wait_registered(app: Any, worker: WorkerProcess, timeout: float = 60) -> None:
    eventually(lambda: registered(app, worker), timeout=timeout)


def wait_completed(app: Any, goal: int, timeout: float = 180) -> None:
    eventually(lambda: completed_count(app) >= goal, timeout=timeout, interval=0.05)


def apply_counters(app: Any) -> int:
    """The counters ``apply`` bumps (1-10); hostile tasks use counter 11."""
    with app.SessionLocal() as session:
        return sum(session.scalars(select(Counter.n).where(Counter.id <= 10)))


def finished(app: Any) -> bool:
    counts = app.jobs.counts()
    return bool(counts) and all(state.is_finished for (_q, state) in counts)


def completed_count(app: Any) -> int:
    return sum(n for (_q, s), n in app.jobs.counts().items() if s is JobState.COMPLETED)


def read_samples(path: Path) -> list[dict[str, Any]]:
    """The sampler lines app.py wrote (threads, checked-out connections, RSS, fds)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def record(scenario: str, dialect: str, **figures: Any) -> None:
    """Print a scenario's figures; also append them to $SQLJOBS_REL_FIGURES (JSON lines),
    which is where docs/reliability.md's tables come from."""
    line: dict[str, Any] = {
        "scenario": scenario,
        "dialect": dialect,
        "at": time.strftime("%Y-%m-%d %H:%M"),
    }
    for key, value in figures.items():
        line[key] = asdict(value) if isinstance(value, Tally) else value
    text = json.dumps(line)
    print(text)
    target = os.environ.get("SQLJOBS_REL_FIGURES")
    if target:
        with open(target, "a") as out:
            out.write(text + "\n")
