"""Shared pieces of the reliability suite: the app bound to this test's database, worker
subprocesses, and the tally that says whether any job was lost or applied twice."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from sqljobs import JobQueue, JobState
from tests.conftest import Counter
from tests.helpers import add_counters, eventually

ROOT = Path(__file__).resolve().parents[2]
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


class WorkerProcess:
    """``python -m sqljobs worker tests.reliability.app:jobs`` with output kept in a file."""

    def __init__(self, db_url: str, log: Path, *args: str, env: dict[str, str] | None = None):
        self.log = log
        self.terminated = False
        environment = {
            **os.environ,
            "SQLJOBS_TEST_DATABASE_URL": db_url,
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sqljobs", "worker", f"{APP}:jobs", "--no-live", *args],
                cwd=ROOT,
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def sigkill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 90) -> int:
        """SIGTERM, then wait for a clean exit; returns the exit code."""
        self.sigterm()
        return self.proc.wait(timeout=timeout)

    def sigterm(self) -> None:
        """One SIGTERM only: a second one skips the grace period, and one that arrives
        while the interpreter shuts down ends the process with -15."""
        if self.proc.poll() is None and not self.terminated:
            self.terminated = True
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


class Workers:
    """Starts worker processes and always kills the survivors at the end of the test."""

    def __init__(self, db_url: str, tmp_path: Path) -> None:
        self.db_url = db_url
        self.tmp_path = tmp_path
        self.started: list[WorkerProcess] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> WorkerProcess:
        log = self.tmp_path / f"worker-{len(self.started)}.log"
        worker = WorkerProcess(self.db_url, log, *args, env=env)
        self.started.append(worker)
        return worker

    def stop_all(self, workers: list[WorkerProcess]) -> None:
        """SIGTERM every worker at once and check each exits cleanly."""
        for worker in workers:
            worker.sigterm()
        for worker in workers:
            code = worker.stop()
            assert code == 0, f"worker {worker.pid} exited {code}:\n{worker.output()[-3000:]}"

    def close(self) -> None:
        for worker in self.started:
            worker.kill()

    def logs(self) -> str:
        return "\n".join(w.output() for w in self.started)


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
