"""Client CPU per job, by phase, beside the raw driver running the same statements:
``python -m bench.cpu [--n N] [--databases postgresql,mariadb,sqlite]``.

Single-threaded, no worker running, so ``time.process_time`` of this process is the client's
CPU for exactly the calls measured. Phases of one durable W2 job:

- **enqueue**: ``task.enqueue(...)`` in its own transaction;
- **stage, claim, start, run + complete**: ``jobs.drain()`` over N jobs (the statements a
  worker sends per job, without the worker's batching and prefetch), split by job-store call
  and the rest (the job's own Session: the task's UPDATE and the completion, one commit);
- **job body**: what the task itself costs run by hand, as the floor runs it (new Session,
  the UPDATE, commit, close).

For each phase the SQL statements and commits one job sends are recorded (SQLAlchemy cursor
events) and replayed N times on one raw DBAPI connection: the driver's own cost for the same
round trips. What sqljobs adds around the task's own work ("bookkeeping") is the per-job total
minus the job body.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from bench.apps.sqljobs_app import make_queue
from bench.db import ensure_databases, reset_counters
from bench.jobbody import do_work, job_args
from bench.settings import DB_URLS
from sqljobs.store import _base as store_base
from sqljobs.worker import _executor as executor_module

#: One recorded step: ("sql", statement, parameters, autocommit, many) or ("commit",).
Step = tuple[Any, ...]


@dataclass
class CpuRow:
    database: str
    phase: str
    sqljobs_us: float
    raw_us: float | None


class Recorder:
    """Records the driver-level statements and commits an engine sends while ``on``."""

    def __init__(self, engine: Engine) -> None:
        self.steps: list[Step] = []
        self.on = False
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)

    def _statement(
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        if self.on:
            autocommit = conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
            self.steps.append(("sql", statement, params, autocommit, many))

    def _commit(self, conn: Any) -> None:
        if self.on:
            self.steps.append(("commit",))

    @contextmanager
    def recording(self) -> Iterator[list[Step]]:
        self.steps, self.on = [], True
        try:
            yield self.steps
        finally:
            self.on = False


def _set_autocommit(dbapi: Any, flag: bool) -> None:
    if hasattr(dbapi, "autocommit") and not callable(dbapi.autocommit):
        if dbapi.autocommit != flag:
            dbapi.autocommit = flag  # psycopg
    elif callable(getattr(dbapi, "autocommit", None)):
        dbapi.autocommit(flag)  # PyMySQL


def replay(engine: Engine, steps: list[Step], n: int) -> float:
    """Client CPU seconds per replay of ``steps`` on one raw DBAPI connection."""
    raw = engine.raw_connection()
    dbapi = raw.driver_connection
    try:
        start = time.process_time()
        for _ in range(n):
            for step in steps:
                if step[0] == "commit":
                    raw.commit()
                    continue
                _, statement, params, autocommit, many = step
                if engine.dialect.name != "sqlite":
                    _set_autocommit(dbapi, autocommit)
                cursor = raw.cursor()
                if many:
                    cursor.executemany(statement, params)
                else:
                    cursor.execute(statement, params)
                if cursor.description is not None:
                    cursor.fetchall()
                cursor.close()
            raw.commit()
        return (time.process_time() - start) / n
    finally:
        raw.rollback()
        raw.close()


@contextmanager
def timed_method(
    owner: type, name: str, clock: Callable[[], float], key: Callable[[dict[str, Any]], str]
) -> Iterator[dict[str, list[float]]]:
    """Time every call of ``owner.name`` on ``clock`` while inside the block, one entry per
    call under ``key(its keyword arguments)``."""
    spent: dict[str, list[float]] = defaultdict(list)
    original = getattr(owner, name)

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return original(self, *args, **kwargs)
        finally:
            spent[key(kwargs)].append(clock() - start)

    setattr(owner, name, timed)
    try:
        yield spent
    finally:
        setattr(owner, name, original)


def time_by_store_call(
    clock: Callable[[], float] = time.process_time,
) -> AbstractContextManager[dict[str, list[float]]]:
    """Time spent in each kind of job-store call (``what``: claim, complete, enqueue, ...),
    on ``clock`` (client CPU by default; ``time.perf_counter`` for wall time), one entry
    per call. Wraps ``StoreBase.run``, which every store transaction goes through."""
    return timed_method(
        store_base.StoreBase, "run", clock, lambda kwargs: kwargs.get("what", "other")
    )


def one_job_of_drain(steps: list[Step]) -> list[Step]:
    """The steps of one job from a recorded ``drain()`` of one job: its claim, its start and
    its own transaction (the task's UPDATE and the completion). Left out: the listing of job
    names and the staging, which drain() sends once per call and when no job is available,
    and the claims that found nothing left."""
    transactions: list[list[Step]] = [[]]
    for step in steps:
        transactions[-1].append(step)
        if step[0] == "commit":
            transactions.append([])
    # names, stage, then the job's claim, start and own transaction
    per_job: list[Step] = []
    for transaction in transactions[2:]:
        per_job += transaction
        if any(s[0] == "sql" and s[1].startswith("UPDATE counters") for s in transaction):
            return per_job
    raise RuntimeError("no job's own transaction in the recorded drain")


def measure(database: str, n: int) -> list[CpuRow]:
    url = DB_URLS[database]
    jobs, tasks = make_queue(url)
    task = tasks["update"]
    engine: Engine = jobs.store.engine
    jobs.drop_schema()
    jobs.create_schema()
    reset_counters(url)
    recorder = Recorder(engine)

    def args(i: int) -> dict[str, Any]:
        return job_args("cpu", i, "update", 0, 0.0)

    rows: list[CpuRow] = []
    # enqueue
    with recorder.recording() as enqueue_steps:
        task.enqueue(**args(-1))
    start = time.process_time()
    for i in range(n):
        task.enqueue(**args(i))
    enqueue_us = (time.process_time() - start) / n * 1e6
    rows.append(CpuRow(database, "enqueue", enqueue_us, replay(engine, enqueue_steps, n) * 1e6))
    jobs.drain()  # the recorded job and the timed ones

    # one job's stage, claim, start, run + complete
    task.enqueue(**args(-2))
    with recorder.recording() as recorded:
        jobs.drain()
    drain_steps = one_job_of_drain(recorded)
    jobs.enqueue_many(None, [task.prepare(**args(i)) for i in range(n)])
    with time_by_store_call() as calls:
        start = time.process_time()
        jobs.drain()
        total = time.process_time() - start
    spent = {what: sum(times) for what, times in calls.items()}
    total -= spent.pop("list job names", 0.0)  # once per drain() call, not per job
    phases = {name: spent.pop(name, 0.0) for name in ("stage", "claim", "start")}
    phases["run + complete (job session)"] = total - sum(phases.values()) - sum(spent.values())
    phases["other store calls"] = sum(spent.values())
    jobs.enqueue_many(None, [task.prepare(**args(i)) for i in range(n)])  # rows to claim
    drain_raw = replay(engine, drain_steps, n) * 1e6
    rows += [CpuRow(database, name, cpu / n * 1e6, None) for name, cpu in phases.items() if cpu]
    rows.append(
        CpuRow(
            database,
            "worker side per job (stage + claim + start + run + complete)",
            total / n * 1e6,
            drain_raw,
        )
    )
    jobs.drain()

    # the job body alone, as the floor runs it
    with recorder.recording() as body_steps, Session(engine) as session:
        do_work(session, 0, "update", 0)
        session.commit()
    start = time.process_time()
    for i in range(n):
        with Session(engine) as session:
            do_work(session, i, "update", 0)
            session.commit()
    body_us = (time.process_time() - start) / n * 1e6
    body_raw = replay(engine, body_steps, n) * 1e6
    rows.append(CpuRow(database, "job body alone (Session, UPDATE, commit)", body_us, body_raw))
    sqljobs_total = enqueue_us + total / n * 1e6
    raw_total = rows[0].raw_us or 0.0
    rows.append(
        CpuRow(
            database,
            "bookkeeping = enqueue + worker side - job body",
            sqljobs_total - body_us,
            raw_total + drain_raw - body_raw,
        )
    )
    jobs.drop_schema()
    return rows


#: Executors of the in-worker measurement: the bench's worker concurrency.
WORKER_CONCURRENCY = 4


def measure_worker(database: str, n: int) -> list[CpuRow]:
    """Client CPU per job of a real threaded worker (``concurrency=4``, batched claims,
    prefetch) draining N pre-enqueued W2 jobs in this process: the worker's threads' CPU,
    split by job-store call and the executors' own run + complete, each on its thread's
    clock (``time.thread_time``)."""
    url = DB_URLS[database]
    jobs, tasks = make_queue(url)
    task = tasks["update"]
    jobs.drop_schema()
    jobs.create_schema()
    reset_counters(url)
    jobs.enqueue_many(
        None, [task.prepare(**job_args("cpuw", i, "update", 0, 0.0)) for i in range(n)]
    )
    engine: Engine = jobs.store.engine
    worker = jobs.worker(concurrency=WORKER_CONCURRENCY)
    run_and_complete = timed_method(
        executor_module.Executor, "execute", time.thread_time, lambda kwargs: "execute"
    )
    with time_by_store_call(time.thread_time) as calls, run_and_complete as executed:
        process_start, main_start = time.process_time(), time.thread_time()
        worker.start()
        while True:
            with engine.connect() as conn:
                done = conn.execute(text("SELECT SUM(n) FROM counters")).scalar() or 0
            if done >= n:
                break
            time.sleep(0.02)  # polling the result from the main thread (not counted)
        worker_cpu = (time.process_time() - process_start) - (time.thread_time() - main_start)
        worker.stop()
    spent = {what: sum(times) for what, times in calls.items()}
    phases = {
        "worker: claim (batched, prefetched)": spent.pop("claim", 0.0),
        "worker: start": spent.pop("start", 0.0),
        "worker: run + complete (job session)": sum(executed["execute"]),
    }
    phases["worker: other store calls (stage, heartbeat, settings)"] = sum(spent.values())
    phases["worker: threads' own work (hand-over, slots, held jobs)"] = worker_cpu - sum(
        phases.values()
    )
    rows = [CpuRow(database, name, cpu / n * 1e6, None) for name, cpu in phases.items()]
    rows.append(CpuRow(database, "worker: all its threads, per job", worker_cpu / n * 1e6, None))
    jobs.drop_schema()
    return rows


def table(rows: list[CpuRow]) -> list[str]:
    lines = [
        "| database | phase | sqljobs CPU us/job | raw driver, same statements | sqljobs / raw |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        raw = "-" if r.raw_us is None else f"{r.raw_us:,.0f}"
        ratio = "-" if not r.raw_us else f"{r.sqljobs_us / r.raw_us:.1f}x"
        lines.append(f"| {r.database} | {r.phase} | {r.sqljobs_us:,.0f} | {raw} | {ratio} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--databases", default="postgresql,mariadb,sqlite")
    args = parser.parse_args()
    ensure_databases()
    rows: list[CpuRow] = []
    for database in args.databases.split(","):
        rows += measure(database, args.n)
        rows += measure_worker(database, args.n)
    print("\n".join(table(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
