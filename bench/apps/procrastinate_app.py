"""The benchmark job as a procrastinate task (a sync task: procrastinate runs it in a thread).
``procrastinate --app=bench.apps.procrastinate_app.app worker``; DSN from ``BENCH_PG_DSN``."""

from __future__ import annotations

import os

from procrastinate import App, PsycopgConnector
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from bench.jobbody import run_with_own_session

app = App(connector=PsycopgConnector(conninfo=os.environ["BENCH_PG_DSN"]))
_url = os.environ["BENCH_PG_DSN"].replace("postgresql://", "postgresql+psycopg://")
SessionLocal = sessionmaker(create_engine(_url))


@app.task(name="bench_job", queue="bench")
def bench_job(run: str, i: int, mode: str, hold_ms: int, t0: float) -> None:
    run_with_own_session(SessionLocal, run, i, mode, hold_ms, t0)
