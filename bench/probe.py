"""Where the enqueue time goes, with public sqljobs API only:
``python -m bench.probe [URL] [--rows N]`` times ``task.enqueue`` (one by one),
``task.prepare`` and ``jobs.enqueue_many``, then prints cProfile's top functions for each."""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from collections.abc import Callable
from typing import Any

from bench.apps.sqljobs_app import make_queue
from bench.jobbody import job_args
from bench.settings import PG_URL


def _timed(label: str, count: int, action: Callable[[], Any], top: int) -> None:
    start = time.perf_counter()
    action()
    elapsed = time.perf_counter() - start
    print(f"{label}: {count / elapsed:,.0f}/s ({1e6 * elapsed / count:.0f} us each)")
    profiler = cProfile.Profile()
    profiler.enable()
    action()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    body = [line for line in out.getvalue().splitlines() if line.strip()]
    print("\n".join(body[3 : 5 + top]), "\n")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.probe")
    parser.add_argument("url", nargs="?", default=PG_URL)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    jobs, tasks = make_queue(args.url)
    task = tasks["noop"]
    jobs.drop_schema()
    jobs.create_schema()
    one_by_one = min(args.rows, 500)

    def enqueue() -> None:
        for i in range(one_by_one):
            task.enqueue(**job_args("probe", i, "noop", 0, 0.0))

    def prepare() -> list[Any]:
        return [task.prepare(**job_args("probe", i, "noop", 0, 0.0)) for i in range(args.rows)]

    prepared = prepare()
    _timed("task.enqueue (own transaction each)", one_by_one, enqueue, args.top)
    _timed("task.prepare", args.rows, prepare, args.top)
    _timed("jobs.enqueue_many", args.rows, lambda: jobs.enqueue_many(None, prepared), args.top)
    jobs.drop_schema()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
