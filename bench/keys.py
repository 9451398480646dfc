"""Per-key limits: what the keyed claim costs beside the plain one.

One in-process worker (concurrency 4) runs N empty jobs of a plain task, then N of a task
with ``KeyLimit(concurrency=1)`` over K keys, then N with ``fifo=True`` over K keys; each
line is jobs/s from the first claim to the last completion. Uses only sqljobs (no bench
extra)::

    .venv/bin/python -m bench.keys --url postgresql+psycopg://postgres@127.0.0.1:5432/sqljobs_bench
    .venv/bin/python -m bench.keys --url mysql+pymysql://root@127.0.0.1:3306/sqljobs_bench
    .venv/bin/python -m bench.keys --url sqlite:///bench/.out/keys.db
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

import sqljobs
from sqljobs import JobQueue, KeyLimit


def run(jobs: JobQueue, task: Any, new: list[Any]) -> float:
    ids = jobs.enqueue_many(None, new)
    started = time.perf_counter()
    with jobs.worker(concurrency=4, poll_interval=0.01):
        while sum(n for (_, state), n in jobs.counts().items() if state.is_finished) < len(ids):
            time.sleep(0.02)
    elapsed = time.perf_counter() - started
    jobs.prune(older_than=0)
    return len(ids) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=100)
    options = parser.parse_args()
    engine = create_engine(options.url, pool_size=12)
    sqljobs.metadata.drop_all(engine)
    jobs = JobQueue(sessionmaker(engine))
    jobs.create_schema()

    @jobs.task(name="plain")
    def plain(key: int) -> None:
        pass

    @jobs.task(name="limited", limit=KeyLimit(by_args=["key"], concurrency=1))
    def limited(key: int) -> None:
        pass

    @jobs.task(name="fifo", limit=KeyLimit(by_args=["key"], fifo=True))
    def fifo(key: int) -> None:
        pass

    n, keys = options.n, options.keys
    for name, task in (("plain", plain), ("concurrency=1", limited), ("fifo", fifo)):
        rate = run(jobs, task, [task.prepare(key=i % keys) for i in range(n)])
        print(f"{engine.dialect.name:10} {name:14} {n} jobs over {keys} keys: {rate:8.0f} jobs/s")


if __name__ == "__main__":
    main()
