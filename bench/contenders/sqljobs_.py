"""sqljobs on PostgreSQL, MariaDB or SQLite: worker processes via the ``sqljobs`` CLI, or
(``inproc``) a worker thread pool inside the enqueuing process, as a FastAPI app's lifespan
would run it."""

from __future__ import annotations

import signal
import time
from collections import Counter

from sqlalchemy.orm import Session

import sqljobs
from bench.apps.sqljobs_app import make_queue
from bench.contenders.base import Contender
from bench.db import request_engine, reset_counters
from bench.jobbody import job_args, record_request
from bench.procs import Process, venv_script
from bench.settings import DB_URLS, OUT, Settings

PROFILE_DIR = OUT / "profiles"
#: Set by ``--profile``: worker processes run under ``py-spy record`` (raw folded stacks).
PROFILE = False
UNFINISHED = ["scheduled", "available", "running", "retryable", "discarded", "cancelled"]


class SqljobsContender(Contender):
    packages = ("sqljobs", "SQLAlchemy", "psycopg", "PyMySQL")

    def __init__(self, settings: Settings, *, name: str, dialect: str, inproc: bool) -> None:
        super().__init__(settings)
        self.name = name
        self.dialect = dialect
        self.inproc = inproc
        self.db_url = DB_URLS[dialect]
        if dialect == "sqlite":
            # One writer: a job holding its write transaction 50 ms blocks every other.
            self.max_hold_jobs = 200
        self.jobs, self.tasks = make_queue(self.db_url)
        self._procs: list[Process] = []
        self._worker: sqljobs.Worker | None = None
        self.profile_to: str | None = str(PROFILE_DIR / name) if PROFILE else None

    def supports(self, workload: str) -> bool:
        if workload == "scale":
            return self.dialect in ("postgresql", "mariadb") and not self.inproc
        if workload == "finished":
            return self.dialect == "postgresql" and not self.inproc
        if workload == "bulk":
            return not self.inproc
        return True

    def setup(self) -> None:
        self.jobs.drop_schema()
        self.jobs.create_schema()
        reset_counters(self.db_url)

    def start(self, processes: int = 1) -> None:
        conc, poll = self.settings.concurrency, self.settings.poll_interval
        if self.inproc:
            self._worker = self.jobs.worker(concurrency=conc, poll_interval=poll)
            self._worker.start()
            return
        for index in range(processes):
            argv = venv_script("sqljobs", *argv_tail(conc, poll))
            if self.profile_to:
                out = f"{self.profile_to}.{int(time.time())}.{processes}p{index}.txt"
                spy = ("record", "--nonblocking", "-r", "200", "-f", "raw", "-o", out, "--")
                argv = venv_script("py-spy", *spy) + argv
            self._procs.append(
                Process(f"{self.name}-{index}", argv, env={"BENCH_SQLJOBS_URL": self.db_url})
            )

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop(grace=10)
            self._worker = None
        sig = signal.SIGINT if self.profile_to else signal.SIGTERM
        for proc in self._procs:
            proc.stop(sig=sig)
        self._procs = []

    def reset(self) -> None:
        self.jobs.prune(older_than=0)

    def enqueue(self, run: str, i: int, mode: str, hold_ms: int, t0: float) -> None:
        self.tasks[mode].enqueue(**job_args(run, i, mode, hold_ms, t0))

    def request(self, run: str, i: int, t0: float) -> None:
        # The request's write and its job commit together, in the request's own session.
        with Session(request_engine(self.db_url)) as session:
            record_request(session, run, i)
            self.tasks["update"].enqueue(session, **job_args(run, i, "update", 0, t0))
            session.commit()

    def has_bulk(self) -> bool:
        return True

    def enqueue_bulk(self, run: str, count: int, mode: str, hold_ms: int = 0) -> None:
        t0 = time.time()
        task = self.tasks[mode]
        prepared = [task.prepare(**job_args(run, i, mode, hold_ms, t0)) for i in range(count)]
        self.jobs.enqueue_many(None, prepared)

    def check(self) -> str:
        # list_jobs by state (index on state) stays cheap with a million finished rows,
        # where counts() would scan them all.
        unfinished: Counter[str] = Counter(
            job.state.value for job in self.jobs.list_jobs(state=UNFINISHED, limit=10_000)
        )
        return ", ".join(f"{n} {s}" for s, n in sorted(unfinished.items()))

    def settings_note(self) -> str:
        where = "in-process worker" if self.inproc else "`sqljobs worker` process(es)"
        return (
            f"{where}, concurrency {self.settings.concurrency}, "
            f"poll_interval {self.settings.poll_interval}s"
        )

    def worker_logs(self) -> str:
        return "\n".join(p.tail() for p in self._procs)


def argv_tail(conc: int, poll: float) -> list[str]:
    return [
        "worker",
        "bench.apps.sqljobs_app:jobs",
        "--concurrency",
        str(conc),
        "--poll-interval",
        str(poll),
        "--log-level",
        "WARNING",
    ]
