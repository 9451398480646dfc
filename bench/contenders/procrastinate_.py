"""procrastinate (PostgreSQL, LISTEN/NOTIFY) with one ``procrastinate worker`` process per
worker; enqueue with the sync ``task.defer()``."""

from __future__ import annotations

import os
import time

import psycopg

from bench.contenders.base import Contender
from bench.db import reset_counters
from bench.jobbody import job_args
from bench.procs import Process, venv_script
from bench.settings import PG_DSN, Settings


class ProcrastinateContender(Contender):
    name = "procrastinate"
    packages = ("procrastinate", "psycopg")

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        os.environ["BENCH_PG_DSN"] = PG_DSN
        from bench.apps import procrastinate_app

        self.module = procrastinate_app
        self._procs: list[Process] = []
        self._opened = False

    def supports(self, workload: str) -> bool:
        return workload in ("w1", "w2", "w1b", "w2b", "w2h", "w3", "w4", "bulk")

    def _sql(self, statement: str) -> list[tuple[object, ...]]:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            cursor = conn.execute(statement)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def setup(self) -> None:
        if not self._opened:
            self.module.app.open()
            self._opened = True
        exists = self._sql("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")[0][0]
        if not exists:
            self.module.app.schema_manager.apply_schema()
        self._sql("TRUNCATE procrastinate_jobs CASCADE")
        reset_counters(self.db_url)

    def start(self, processes: int = 1) -> None:
        for index in range(processes):
            argv = venv_script(
                "procrastinate",
                "--app=bench.apps.procrastinate_app.app",
                "worker",
                f"--concurrency={self.settings.concurrency}",
                "--queues=bench",
                "--delete-jobs=never",
            )
            env = {"BENCH_PG_DSN": PG_DSN}
            self._procs.append(Process(f"procrastinate-{index}", argv, env=env))

    def stop(self) -> None:
        for proc in self._procs:
            proc.stop()
        self._procs = []

    def reset(self) -> None:
        self._sql("DELETE FROM procrastinate_jobs WHERE status = 'succeeded'")

    def enqueue(self, run: str, i: int, mode: str, hold_ms: int, t0: float) -> None:
        self.module.bench_job.defer(**job_args(run, i, mode, hold_ms, t0))

    def has_bulk(self) -> bool:
        return True

    def enqueue_bulk(self, run: str, count: int, mode: str, hold_ms: int = 0) -> None:
        t0 = time.time()
        jobs = (job_args(run, i, mode, hold_ms, t0) for i in range(count))
        self.module.bench_job.batch_defer(*jobs)

    def check(self) -> str:
        rows = self._sql(
            "SELECT status, count(*) FROM procrastinate_jobs "
            "WHERE status <> 'succeeded' GROUP BY status"
        )
        return ", ".join(f"{n} {status}" for status, n in rows)

    def settings_note(self) -> str:
        return f"`procrastinate worker --concurrency {self.settings.concurrency}`, sync task"
