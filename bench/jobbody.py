"""The one job every contender runs, and the marker files that say it ran.

A job is ``(run, i, mode, hold_ms, t0)``. ``noop`` does nothing; ``update`` runs
``UPDATE counters SET n = n + 1 WHERE id = :k`` (k = i % 10) in the given session; ``hold``
checks out the session's connection, holds it ``hold_ms`` and then updates. A W4 request
first inserts its own ``bench_requests`` row (:func:`record_request`), then hands the
``update`` job over. Every process
appends one line per job to ``markers/<run>.<pid>``: ``D i started finished`` once the job's
work is done, ``E i error`` when it failed. The harness reads these files to count done,
failed and lost jobs and pickup latency, identically for every contender.
"""

from __future__ import annotations

import os
import threading
import time
from typing import IO, Any

from sqlalchemy import Column, Integer, MetaData, String, Table, insert, text
from sqlalchemy.orm import Session

from bench.settings import COUNTER_ROWS, MARKERS

UPDATE = text("UPDATE counters SET n = n + 1 WHERE id = :k")
#: W4's request side: each request inserts its own row, then hands a job over.
REQUESTS = Table(
    "bench_requests",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run", String(40), nullable=False),
    Column("i", Integer, nullable=False),
)
_lock = threading.Lock()
_files: dict[str, IO[str]] = {}


def job_args(run: str, i: int, mode: str, hold_ms: int, t0: float) -> dict[str, Any]:
    return {"run": run, "i": i, "mode": mode, "hold_ms": hold_ms, "t0": t0}


def needs_db(mode: str) -> bool:
    return mode != "noop"


def do_work(session: Session, i: int, mode: str, hold_ms: int) -> None:
    """The job's database work in ``session`` (the caller commits)."""
    if mode == "hold":
        session.connection()  # check the connection out, then hold it
        time.sleep(hold_ms / 1000)
    session.execute(UPDATE, {"k": i % COUNTER_ROWS + 1})


def record_request(session: Session, run: str, i: int) -> None:
    """What a W4 request writes itself, in its own session (the caller commits)."""
    session.execute(insert(REQUESTS).values(run=run, i=i))


def _write(run: str, line: str) -> None:
    with _lock:
        handle = _files.get(run)
        if handle is None:
            MARKERS.mkdir(parents=True, exist_ok=True)
            handle = _files[run] = open(MARKERS / f"{run}.{os.getpid()}", "a")
        handle.write(line)
        handle.flush()


def mark_done(run: str, i: int, started: float) -> None:
    _write(run, f"D {i} {started:.6f} {time.time():.6f}\n")


def mark_error(run: str, i: int, exc: BaseException) -> None:
    message = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
    _write(run, f"E {i} {message}\n")


def run_with_own_session(
    session_factory: Any, run: str, i: int, mode: str, hold_ms: int, t0: float
) -> None:
    """The session rule by hand: new session, commit, roll back and record on error, close."""
    started = time.time()
    if not needs_db(mode):
        mark_done(run, i, started)
        return
    session: Session = session_factory()
    try:
        do_work(session, i, mode, hold_ms)
        session.commit()
    except Exception as exc:
        session.rollback()
        mark_error(run, i, exc)
        raise
    finally:
        session.close()
    mark_done(run, i, started)
