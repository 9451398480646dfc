"""The naive pattern: ``threading.Thread(target=work).start()`` with a new ``SessionLocal()``
inside, commit / rollback / log / close by hand. One thread per job, the engine's default
pool (5 + 10 overflow, 30 s timeout). Not durable: jobs live in memory only."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from bench.contenders.base import Contender
from bench.db import reset_counters
from bench.jobbody import run_with_own_session
from bench.settings import DB_URLS, Settings

log = logging.getLogger("bench.naive")
#: Workloads the in-process, queue-less contenders (naive threads, the floor) run.
IN_MEMORY_WORKLOADS = ("w1", "w2", "w1b", "w2b", "w2h", "w3", "w4")


class InMemoryContender(Contender):
    """A contender with no queue: the job body runs in this process, on a new Session from
    ``session_local`` each time (the naive pattern, the floor)."""

    durable = False
    packages = ("SQLAlchemy", "psycopg", "PyMySQL")

    def __init__(self, settings: Settings, *, name: str, dialect: str) -> None:
        super().__init__(settings)
        self.name = name
        self.dialect = dialect
        self.db_url = DB_URLS[dialect]
        if dialect == "sqlite":
            self.max_hold_jobs = 200  # one writer, as for sqljobs-sqlite
        self.engine = create_engine(self.db_url)
        self.session_local = sessionmaker(self.engine)

    def supports(self, workload: str) -> bool:
        return workload in IN_MEMORY_WORKLOADS

    def setup(self) -> None:
        reset_counters(self.db_url)

    def _work(self, run: str, i: int, mode: str, hold_ms: int, t0: float) -> None:
        try:
            run_with_own_session(self.session_local, run, i, mode, hold_ms, t0)
        except Exception:
            log.debug("background job %s failed", i, exc_info=True)  # "logged", as usual


class NaiveThreads(InMemoryContender):
    def __init__(self, settings: Settings, *, name: str, dialect: str) -> None:
        super().__init__(settings, name=name, dialect=dialect)
        self.peak_threads = 0

    def start(self, processes: int = 1) -> None:
        pass

    def stop(self) -> None:
        for thread in threading.enumerate():
            if thread.name.startswith("naive-job"):
                thread.join(timeout=60)
        self.engine.dispose()

    def enqueue(self, run: str, i: int, mode: str, hold_ms: int, t0: float) -> None:
        thread = threading.Thread(
            target=self._work, args=(run, i, mode, hold_ms, t0), name=f"naive-job-{i}"
        )
        thread.start()
        self.peak_threads = max(self.peak_threads, threading.active_count())

    def settings_note(self) -> str:
        return "one thread per job, default QueuePool (5+10, timeout 30 s), in memory"
