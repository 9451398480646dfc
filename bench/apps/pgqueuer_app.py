"""The benchmark job as a PgQueuer entrypoint. ``python -m bench.apps.pgqueuer_app`` runs a
worker as ``pgq run bench.apps.pgqueuer_app:main`` does (through ``pgqueuer.run``: the
``pgq`` command of this version fails on its ``--log-level`` option with typer 0.29);
DSN from ``BENCH_PG_DSN``. PgQueuer entrypoints must be async: the blocking SQLAlchemy work
runs on a pool of ``BENCH_CONCURRENCY`` threads."""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import asyncpg
import pgqueuer
from pgqueuer import AsyncpgDriver, PgQueuer
from pgqueuer.models import Job
from pgqueuer.queries import Queries
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from bench.jobbody import run_with_own_session

ENTRYPOINT = "bench_job"


@asynccontextmanager
async def main() -> AsyncIterator[PgQueuer]:
    dsn = os.environ["BENCH_PG_DSN"]
    session_local = sessionmaker(
        create_engine(dsn.replace("postgresql://", "postgresql+psycopg://"))
    )
    connection = await asyncpg.connect(dsn)
    pgq = PgQueuer(AsyncpgDriver(connection))

    # A per-entrypoint concurrency_limit is enforced in SQL against jobs still "picked",
    # and PgQueuer flushes completions in buffered batches: with a limit of 4 it ran ~40
    # jobs/s here. So dispatch is unlimited and the blocking work runs on 4 threads.
    threads = ThreadPoolExecutor(int(os.environ.get("BENCH_CONCURRENCY", "4")))

    @pgq.entrypoint(ENTRYPOINT)
    async def bench_job(job: Job) -> None:
        args = json.loads(job.payload or b"{}")
        work = functools.partial(run_with_own_session, session_local, **args)
        await asyncio.get_running_loop().run_in_executor(threads, work)

    try:
        yield pgq
    finally:
        await connection.close()


async def install() -> None:
    """Create PgQueuer's tables if they are missing."""
    connection = await asyncpg.connect(os.environ["BENCH_PG_DSN"])
    try:
        queries = Queries(AsyncpgDriver(connection))
        if not await queries.schema_is_installed():
            await queries.install()
    finally:
        await connection.close()


if __name__ == "__main__":
    asyncio.run(pgqueuer.run("bench.apps.pgqueuer_app:main"))
