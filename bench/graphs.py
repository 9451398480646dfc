"""Job graphs end to end: a fan-out of N jobs with a fan-in, beside N plain jobs (W1-like:
enqueued first, then run by one in-process worker), on PostgreSQL, MariaDB or SQLite.

    bench/.venv/bin/python -m bench.graphs --n 10000            # every database
    bench/.venv/bin/python -m bench.graphs --n 2000 --databases postgresql

Uses databases of its own, ``sqljobs_graphs_bench`` beside ``sqljobs_bench`` on the
benchmark servers (bench/README.md), so a suite run is not disturbed; prints jobs/s.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

import sqljobs
from bench.settings import MARIADB_URL, OUT, PG_URL

CONCURRENCY = 4
DB_NAME = "sqljobs_graphs_bench"


def urls() -> dict[str, str]:
    return {
        "postgresql": make_url(PG_URL).set(database=DB_NAME).render_as_string(False),
        "mariadb": make_url(MARIADB_URL).set(database=DB_NAME).render_as_string(False),
        "sqlite": f"sqlite:///{OUT / 'graphs.db'}",
    }


def ensure_database(name: str, url: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    if name == "sqlite":
        return
    admin_db = "postgres" if name == "postgresql" else "mysql"
    admin = create_engine(make_url(url).set(database=admin_db), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if name == "mariadb":
            conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{DB_NAME}`"))
        elif not conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": DB_NAME}
        ).first():
            conn.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    admin.dispose()


def run(url: str, n: int, enqueue: Callable[[sqljobs.JobQueue, int], int]) -> float:
    """Jobs per second from the worker's start until ``expected`` jobs completed."""
    engine = create_engine(url, pool_size=CONCURRENCY + 4)
    jobs = sqljobs.JobQueue(sessionmaker(engine))

    @jobs.task(name="bench.part")
    def part(index: int) -> int:
        return index

    @jobs.task(name="bench.gather")
    def gather(results: list[int]) -> int:
        return len(results)

    jobs.drop_schema()
    jobs.create_schema()
    expected = enqueue(jobs, n)
    started = time.perf_counter()
    with jobs.worker(concurrency=CONCURRENCY, poll_interval=0.05):
        while jobs.counts().get(("default", sqljobs.JobState.COMPLETED), 0) < expected:
            time.sleep(0.05)
    elapsed = time.perf_counter() - started
    jobs.close()
    engine.dispose()
    return expected / elapsed


def plain(jobs: sqljobs.JobQueue, n: int) -> int:
    task = jobs.registry["bench.part"]
    jobs.enqueue_many(None, [task.prepare(index=i) for i in range(n)])
    return n


def fan_out_fan_in(jobs: sqljobs.JobQueue, n: int) -> int:
    g = jobs.graph()
    parts = g.group(jobs.registry["bench.part"], [{"index": i} for i in range(n)])
    g.add(jobs.registry["bench.gather"], depends_on=parts, results_as="results")
    g.enqueue()
    return n + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--databases", default="postgresql,mariadb,sqlite")
    options = parser.parse_args()
    print(f"| database | plain jobs/s (N={options.n}) | fan-out + fan-in jobs/s |")
    print("|---|---|---|")
    for name in options.databases.split(","):
        url = urls()[name]
        ensure_database(name, url)
        print(
            f"| {name} | {run(url, options.n, plain):.0f} "
            f"| {run(url, options.n, fan_out_fan_in):.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
