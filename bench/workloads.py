"""The workloads: W1 no-op, W2 database work, W2h held connections, W3 pickup latency, W4
request write + job handed over, the pgbench ceiling, and the scale runs (processes, 1M
finished rows, bulk enqueue)."""

from __future__ import annotations

import re
import statistics
import subprocess
import threading
import time

from sqlalchemy import text

from bench.contenders.base import Contender, new_run
from bench.db import (
    counter_sum,
    engine_for,
    request_rows,
    reset_counters,
    server_work,
    zero_counters,
)
from bench.markers import MarkerReader, Tally
from bench.results import Result
from bench.settings import OUT, PG_URL, Settings

PGBENCH_SCRIPT = "\\set k random(1, 10)\nUPDATE counters SET n = n + 1 WHERE id = :k;\n"


class Stalled(RuntimeError):
    pass


def wait_for(reader: MarkerReader, n: int, settings: Settings, settle: float = 3.0) -> Tally:
    """Wait until every job finished or failed (then give retries ``settle`` seconds), or
    until no job progressed for 45 s / the overall timeout passed."""
    deadline = time.monotonic() + settings.job_timeout
    last_progress, seen = time.monotonic(), -1
    settled_at: float | None = None
    while True:
        tally = reader.poll()
        now = time.monotonic()
        if tally.done >= n:
            return tally
        if tally.settled() + tally.errors != seen:
            seen, last_progress = tally.settled() + tally.errors, now
        if tally.settled() >= n:
            settled_at = settled_at or now
            if now - settled_at > settle:
                return tally
        if now > deadline or now - last_progress > 45:
            return tally
        time.sleep(0.01)


def warm_up(
    contender: Contender, settings: Settings, processes: int, *, reset: bool = True
) -> None:
    """Run a few no-op jobs so workers are connected and idle before measuring; ``reset``
    then clears finished jobs (not wanted when finished rows were seeded on purpose)."""
    run = new_run("warm")
    count = settings.concurrency * processes * 2
    reader = MarkerReader(run)
    for i in range(count):
        contender.enqueue(run, i, "noop", 0, time.time())
    tally = wait_for(reader, count, settings)
    settle(contender)
    if tally.done < count:
        raise Stalled(f"warm-up: only {tally.done}/{count} no-op jobs ran")
    time.sleep(0.5)
    if reset:
        contender.reset()


def throughput(
    contender: Contender,
    settings: Settings,
    workload: str,
    *,
    mode: str,
    n: int,
    processes: int = 1,
    bulk: bool = False,
    producers: int = 1,
    count_server: bool = False,
) -> Result:
    """Enqueue ``n`` jobs one by one (each in its own transaction / request), or with
    ``bulk`` in one call where the system has one, while the workers run; end-to-end
    jobs/s = n / (first enqueue -> last job finished). Mode ``request`` (W4): each of the
    ``n`` requests writes its own row and hands an ``update`` job over
    (:meth:`Contender.request`); both the request rows and the counters must sum to ``n``."""
    uses_db = mode != "noop"
    if uses_db:
        zero_counters(contender.db_url)
    run = new_run(workload)
    reader = MarkerReader(run)
    hold = settings.hold_ms if mode == "hold" else 0
    work_before = server_work(contender.db_url) if count_server else None
    start = time.time()
    if bulk:
        contender.enqueue_bulk(run, n, mode, hold)
    elif mode == "request":
        for i in range(n):
            contender.request(run, i, time.time())
    elif producers > 1:
        _enqueue_from_threads(contender, run, n, mode, hold, producers)
    else:
        for i in range(n):
            contender.enqueue(run, i, mode, hold, time.time())
    enqueued = time.time()
    tally = wait_for(reader, n, settings)
    settled = settle(contender)
    result = _result(workload, contender, n, processes, tally, start, settled)
    result.enqueue_per_s = n / max(enqueued - start, 1e-9)
    if uses_db:
        result.counter_sum = counter_sum(contender.db_url)
        result.expected_sum = n
    if mode == "request":
        result.request_rows = request_rows(contender.db_url, run)
    result.producers = producers
    if work_before is not None:
        time.sleep(1.0)  # PostgreSQL publishes its statistics about once a second
        work_after = server_work(contender.db_url)
        if work_after is not None:
            result.server_per_job = (work_after - work_before) / n
    result.leftover = contender.check()
    return result


def _enqueue_from_threads(
    contender: Contender, run: str, n: int, mode: str, hold: int, producers: int
) -> None:
    """Enqueue jobs ``0..n-1`` from ``producers`` threads at once (job i from thread
    i % producers), each enqueue its own transaction."""
    failures: list[BaseException] = []

    def produce(offset: int) -> None:
        try:
            for i in range(offset, n, producers):
                contender.enqueue(run, i, mode, hold, time.time())
        except BaseException as exc:  # reported after the join
            failures.append(exc)

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(producers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def latency(contender: Contender, settings: Settings) -> Result:
    """Enqueue at a steady rate; pickup latency = job start - enqueue call start."""
    run = new_run("w3")
    reader = MarkerReader(run)
    n = int(settings.latency_rate * settings.latency_seconds)
    t0s: dict[int, float] = {}
    start = time.time()
    for i in range(n):
        due = start + i / settings.latency_rate
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        t0s[i] = time.time()
        contender.enqueue(run, i, "noop", 0, t0s[i])
    tally = wait_for(reader, n, settings)
    settle(contender)
    result = _result("w3", contender, n, 1, tally, start)
    waits = sorted((tally.started[i] - t0s[i]) * 1000 for i in tally.started)
    if waits:
        result.p50_ms = statistics.median(waits)
        result.p99_ms = waits[min(len(waits) - 1, round(0.99 * (len(waits) - 1)))]
        result.max_ms = waits[-1]
    result.jobs_per_s = None
    result.leftover = contender.check()
    return result


def settle(contender: Contender, timeout: float = 10.0) -> float | None:
    """After the jobs reported done, wait until the system's own bookkeeping has recorded
    them finished too (a job's work commits before its completion does in several systems);
    returns when it did, or None if nothing was left to wait for (or it never settled)."""
    if not contender.check():
        return None
    deadline = time.monotonic() + timeout
    while contender.check():
        if time.monotonic() > deadline:
            return None
        time.sleep(0.005)
    return time.time()


def _result(
    workload: str,
    contender: Contender,
    n: int,
    processes: int,
    tally: Tally,
    start: float,
    settled: float | None = None,
) -> Result:
    end = max(tally.finished.values(), default=time.time())
    if settled is not None and tally.done == n:
        end = max(end, settled)
    return Result(
        workload=workload,
        contender=contender.name,
        n=n,
        processes=processes,
        jobs_per_s=tally.done / max(end - start, 1e-9),
        errors=tally.errors,
        lost=n - tally.done,
        seconds=end - start,
        error_kinds=dict(tally.messages),
    )


def bulk_enqueue(contender: Contender, settings: Settings) -> Result:
    """Enqueue ``bulk_n`` jobs in one call (no workers running)."""
    run = new_run("bulk")
    start = time.perf_counter()
    contender.enqueue_bulk(run, settings.bulk_n, "noop", 0)
    elapsed = time.perf_counter() - start
    return Result(
        workload="bulk",
        contender=contender.name,
        n=settings.bulk_n,
        enqueue_per_s=settings.bulk_n / elapsed,
        seconds=elapsed,
    )


def seed_finished(url: str, rows: int) -> float:
    """Insert ``rows`` completed sqljobs jobs directly (PostgreSQL); returns seconds taken."""
    start = time.perf_counter()
    with engine_for(url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sqljobs_jobs (queue, task, args, state, priority, attempt,"
                " max_attempts, run_at, created_at, started_at, finished_at, errors)"
                " SELECT 'default', 'bench.job', CAST('{}' AS json), 'completed', 0, 1, 5,"
                " now() - interval '1 day', now() - interval '1 day',"
                " now() - interval '1 day', now() - interval '1 day', CAST('[]' AS json)"
                " FROM generate_series(1, :rows)"
            ),
            {"rows": rows},
        )
    with engine_for(url).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE sqljobs_jobs"))
        # Write the seeded pages out now, not during the measurement that follows.
        conn.execute(text("CHECKPOINT"))
    return time.perf_counter() - start


def pgbench_ceiling(settings: Settings) -> Result:
    """pgbench running the same UPDATE with ``concurrency`` clients on the same server."""
    reset_counters(PG_URL)
    script = OUT / "pgbench_update.sql"
    script.write_text(PGBENCH_SCRIPT)
    clients = settings.concurrency
    argv = [
        "pgbench",
        "-h",
        "127.0.0.1",
        "-U",
        "postgres",
        "-n",
        "-c",
        str(clients),
        "-j",
        str(min(clients, 2)),
        "-T",
        str(settings.pgbench_seconds),
        "-f",
        str(script),
        engine_for(PG_URL).url.database or "postgres",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
    result = Result(workload="ceiling", contender="pgbench", n=0, processes=clients)
    if done.returncode != 0 or match is None:
        result.failure = f"pgbench failed: {done.stderr.strip()[-300:]}"
        return result
    result.jobs_per_s = float(match.group(1))
    result.seconds = settings.pgbench_seconds
    result.note = f"{clients} clients, simple protocol, {settings.pgbench_seconds}s"
    result.counter_sum = counter_sum(PG_URL)
    return result
