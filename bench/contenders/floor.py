"""The Python floor: the same job body (new Session, the work, commit, close) on
``concurrency`` threads of one ``ThreadPoolExecutor`` in the enqueuing process. No queue, no
bookkeeping, nothing durable: what the job itself costs in Python on this machine, which no
queue running it can beat. Every sqljobs figure is also reported as a ratio to it."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from bench.contenders.base import Contender
from bench.contenders.naive import IN_MEMORY_WORKLOADS
from bench.db import reset_counters
from bench.jobbody import run_with_own_session
from bench.settings import DB_URLS, Settings

log = logging.getLogger("bench.floor")


class ThreadPoolFloor(Contender):
    durable = False
    packages = ("SQLAlchemy", "psycopg", "PyMySQL")

    def __init__(self, settings: Settings, *, name: str, dialect: str) -> None:
        super().__init__(settings)
        self.name = name
        self.dialect = dialect
        self.db_url = DB_URLS[dialect]
        if dialect == "sqlite":
            self.max_hold_jobs = 200
        self.engine = create_engine(self.db_url)
        self.session_local = sessionmaker(self.engine)
        self.pool: ThreadPoolExecutor | None = None

    def supports(self, workload: str) -> bool:
        return workload in IN_MEMORY_WORKLOADS

    def setup(self) -> None:
        reset_counters(self.db_url)

    def start(self, processes: int = 1) -> None:
        self.pool = ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="floor")

    def stop(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None
        self.engine.dispose()

    def _work(self, run: str, i: int, mode: str, hold_ms: int, t0: float) -> None:
        try:
            run_with_own_session(self.session_local, run, i, mode, hold_ms, t0)
        except Exception:
            log.debug("job %s failed", i, exc_info=True)

    def enqueue(self, run: str, i: int, mode: str, hold_ms: int, t0: float) -> None:
        if self.pool is None:
            raise RuntimeError("the floor's thread pool is not started")
        self.pool.submit(self._work, run, i, mode, hold_ms, t0)

    def settings_note(self) -> str:
        return f"{self.settings.concurrency} threads (ThreadPoolExecutor), no queue, in memory"
