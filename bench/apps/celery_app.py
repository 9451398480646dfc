"""The benchmark job as a Celery task, Redis broker (``BENCH_REDIS_URL``), no result backend.
``celery -A bench.apps.celery_app worker``; each prefork child makes its own engine."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from celery import Celery
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from bench.jobbody import run_with_own_session

app = Celery("bench", broker=os.environ["BENCH_REDIS_URL"])
app.conf.update(
    task_ignore_result=True, task_default_queue="bench", worker_hijack_root_logger=False
)


@cache
def _session_local(pid: int) -> Any:
    return sessionmaker(create_engine(os.environ["BENCH_PG_URL"]))


@app.task(name="bench_job")
def bench_job(run: str, i: int, mode: str, hold_ms: int, t0: float) -> None:
    run_with_own_session(_session_local(os.getpid()), run, i, mode, hold_ms, t0)
