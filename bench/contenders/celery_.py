"""Celery with the Redis broker: one ``celery worker`` (prefork pool) per worker process;
enqueue with ``task.delay()``. Durable only as far as Redis persists its lists."""

from __future__ import annotations

import os

import redis

from bench.contenders.base import Contender
from bench.db import reset_counters
from bench.jobbody import job_args
from bench.procs import Process, venv_script
from bench.settings import PG_URL, REDIS_URL, Settings


class CeleryContender(Contender):
    name = "celery-redis"
    packages = ("celery", "kombu", "redis")

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        os.environ["BENCH_REDIS_URL"] = REDIS_URL
        os.environ["BENCH_PG_URL"] = PG_URL
        from bench.apps import celery_app

        self.task = celery_app.bench_job
        self._redis = redis.Redis.from_url(REDIS_URL)
        self._procs: list[Process] = []

    def supports(self, workload: str) -> bool:
        return workload in ("w1", "w2", "w1b", "w2b", "w2h", "w3", "w4")

    def setup(self) -> None:
        self._redis.flushdb()
        reset_counters(self.db_url)

    def start(self, processes: int = 1) -> None:
        for index in range(processes):
            argv = venv_script(
                "celery",
                "-A",
                "bench.apps.celery_app",
                "worker",
                f"--concurrency={self.settings.concurrency}",
                "--pool=prefork",
                "--loglevel=WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                f"--hostname=bench{index}@%h",
            )
            env = {"BENCH_REDIS_URL": REDIS_URL, "BENCH_PG_URL": PG_URL}
            self._procs.append(Process(f"celery-{index}", argv, env=env))

    def stop(self) -> None:
        for proc in self._procs:
            proc.stop()
        self._procs = []

    def enqueue(self, run: str, i: int, mode: str, hold_ms: int, t0: float) -> None:
        self.task.delay(**job_args(run, i, mode, hold_ms, t0))

    def check(self) -> str:
        waiting = int(self._redis.llen("bench"))
        return f"{waiting} still in the Redis list" if waiting else ""

    def settings_note(self) -> str:
        return (
            f"`celery worker --pool=prefork --concurrency={self.settings.concurrency}`, "
            "Redis broker, no result backend"
        )
