"""The benchmark job as a PgQueuer entrypoint. ``pgq run bench.apps.pgqueuer_app:main``;
DSN from ``BENCH_PG_DSN``, per-entrypoint concurrency from ``BENCH_CONCURRENCY``. PgQueuer
entrypoints must be async: the blocking SQLAlchemy work runs in ``asyncio.to_thread``."""

from __future__ import annotations

import asyncio
import json
import os

import asyncpg
from pgqueuer import AsyncpgDriver, PgQueuer
from pgqueuer.models import Job
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from bench.jobbody import run_with_own_session

ENTRYPOINT = "bench_job"


async def main() -> PgQueuer:
    dsn = os.environ["BENCH_PG_DSN"]
    session_local = sessionmaker(
        create_engine(dsn.replace("postgresql://", "postgresql+psycopg://"))
    )
    connection = await asyncpg.connect(dsn)
    pgq = PgQueuer(AsyncpgDriver(connection))

    @pgq.entrypoint(ENTRYPOINT, concurrency_limit=int(os.environ.get("BENCH_CONCURRENCY", "4")))
    async def bench_job(job: Job) -> None:
        args = json.loads(job.payload or b"{}")
        await asyncio.to_thread(run_with_own_session, session_local, **args)

    return pgq
