"""PgQueuer (PostgreSQL, LISTEN/NOTIFY) with one worker process (``pgqueuer.run``) each; enqueue
with its ``SyncQueries`` on a psycopg connection."""

from __future__ import annotations

import asyncio
import json
import os
import time

import psycopg
from pgqueuer.db import SyncPsycopgDriver
from pgqueuer.queries import SyncQueries

from bench.apps.pgqueuer_app import ENTRYPOINT, install
from bench.contenders.base import Contender
from bench.db import reset_counters
from bench.jobbody import job_args
from bench.procs import Process, python_module
from bench.settings import PG_DSN, Settings


class PgQueuerContender(Contender):
    name = "pgqueuer"
    packages = ("pgqueuer", "asyncpg", "psycopg")

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._conn = psycopg.connect(PG_DSN, autocommit=True)
        self._queries = SyncQueries(SyncPsycopgDriver(self._conn))
        self._procs: list[Process] = []

    def supports(self, workload: str) -> bool:
        return workload in ("w1", "w2", "w1b", "w2b", "w2h", "w3", "w4", "bulk")

    def _sql(self, statement: str) -> list[tuple[object, ...]]:
        cursor = self._conn.execute(statement)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []

    def setup(self) -> None:
        os.environ["BENCH_PG_DSN"] = PG_DSN
        asyncio.run(install())
        self._clear()
        reset_counters(self.db_url)

    def _env(self) -> dict[str, str]:
        return {
            "BENCH_PG_DSN": PG_DSN,
            "PGDSN": PG_DSN,
            "BENCH_CONCURRENCY": str(self.settings.concurrency),
        }

    def _clear(self) -> None:
        for table in ("pgqueuer", "pgqueuer_log", "pgqueuer_statistics"):
            if self._sql(f"SELECT to_regclass('{table}') IS NOT NULL")[0][0]:
                self._sql(f"TRUNCATE {table}")

    def start(self, processes: int = 1) -> None:
        for index in range(processes):
            argv = python_module("bench.apps.pgqueuer_app")
            self._procs.append(Process(f"pgqueuer-{index}", argv, env=self._env()))

    def stop(self) -> None:
        for proc in self._procs:
            proc.stop()
        self._procs = []

    def reset(self) -> None:
        self._sql("TRUNCATE pgqueuer_log")

    def enqueue(self, run: str, i: int, mode: str, hold_ms: int, t0: float) -> None:
        payload = json.dumps(job_args(run, i, mode, hold_ms, t0)).encode()
        self._queries.enqueue(ENTRYPOINT, payload)

    def has_bulk(self) -> bool:
        return True

    def enqueue_bulk(self, run: str, count: int, mode: str, hold_ms: int = 0) -> None:
        t0 = time.time()
        payloads: list[bytes | None] = [
            json.dumps(job_args(run, i, mode, hold_ms, t0)).encode() for i in range(count)
        ]
        self._queries.enqueue([ENTRYPOINT] * count, payloads, [0] * count)

    def check(self) -> str:
        rows = self._sql("SELECT status::text, count(*) FROM pgqueuer GROUP BY status")
        return ", ".join(f"{n} {status}" for status, n in rows)

    def settings_note(self) -> str:
        return (
            "`pgqueuer.run` (as `pgq run`), no entrypoint limit (see bench/apps/pgqueuer_app.py),"
            f" work on {self.settings.concurrency} threads"
        )
