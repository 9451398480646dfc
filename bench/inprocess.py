"""W1 / W1b in one process, with the time spent in each job-store call:
``python -m bench.inprocess [URL] [--n N] [--bulk] [--seed ROWS]``.

An in-process worker (concurrency 4) runs while the main thread enqueues N no-op jobs one by
one (W1) or in one call (``--bulk``, W1b); ``--seed`` first inserts that many completed jobs,
as the ``finished`` workload does. Prints end-to-end jobs/s and, per store call kind
(claim, complete, enqueue, stage, ...), how often it ran and how long it took, so a slowdown
can be pinned to a statement."""

from __future__ import annotations

import argparse
import threading
import time

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

import sqljobs
from bench.cpu import time_by_store_call
from bench.settings import PG_URL
from bench.workloads import seed_finished


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess")
    parser.add_argument("url", nargs="?", default=PG_URL)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--bulk", action="store_true", help="enqueue in one call (W1b)")
    parser.add_argument("--seed", type=int, default=0, help="completed jobs inserted first")
    args = parser.parse_args()

    jobs = sqljobs.JobQueue(sessionmaker(create_engine(args.url)))
    done = 0
    lock = threading.Lock()

    @jobs.task(name="bench.inprocess")
    def noop(i: int) -> None:
        nonlocal done
        with lock:
            done += 1

    jobs.drop_schema()
    jobs.create_schema()
    if args.seed:
        print(f"seeded {args.seed:,} completed jobs in {seed_finished(args.url, args.seed):.0f}s")
    with (
        time_by_store_call(time.perf_counter) as timings,
        jobs.worker(concurrency=4, poll_interval=0.05),
    ):
        time.sleep(1)  # started and idle
        timings.clear()
        start = time.perf_counter()
        if args.bulk:
            jobs.enqueue_many(None, [noop.prepare(i=i) for i in range(args.n)])
        else:
            for i in range(args.n):
                noop.enqueue(i=i)
        while done < args.n:
            time.sleep(0.002)
        elapsed = time.perf_counter() - start
    shape = "in one call" if args.bulk else "one by one"
    print(f"{args.n} no-op jobs enqueued {shape}: {args.n / elapsed:,.0f} jobs/s end to end")
    for what, spent in sorted(timings.items(), key=lambda item: -sum(item[1])):
        print(
            f"  {what:18s} {len(spent):6d} calls  {1000 * sum(spent) / len(spent):6.2f} ms each"
            f"  {sum(spent):6.2f} s"
        )
    jobs.drop_schema()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
