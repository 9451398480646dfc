"""The app the reliability suite runs in ``sqljobs worker`` subprocesses.

Configured by environment variables so one module serves every scenario:

- ``SQLJOBS_TEST_DATABASE_URL``: the database (required);
- ``SQLJOBS_REL_POOL_SIZE`` / ``SQLJOBS_REL_MAX_OVERFLOW`` / ``SQLJOBS_REL_POOL_TIMEOUT``: the
  engine's pool (defaults 12 / 10 / 30 s);
- ``SQLJOBS_REL_POOLER``: ``transaction`` when the URL goes through PgBouncer in transaction
  pooling mode (``JobQueue(pooler=...)``);
- ``SQLJOBS_REL_SAMPLES``: a file to which a sampler thread appends one JSON line per
  ``SQLJOBS_REL_SAMPLE_EVERY`` seconds (threads, checked-out connections, RSS, open fds).
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert
from sqlalchemy.orm import Session, sessionmaker

from sqljobs import Backoff, JobQueue
from tests.helpers import increment

engine = create_engine(
    os.environ["SQLJOBS_TEST_DATABASE_URL"],
    pool_size=int(os.environ.get("SQLJOBS_REL_POOL_SIZE", "12")),
    max_overflow=int(os.environ.get("SQLJOBS_REL_MAX_OVERFLOW", "10")),
    pool_timeout=float(os.environ.get("SQLJOBS_REL_POOL_TIMEOUT", "30")),
)
SessionLocal = sessionmaker(engine)
jobs = JobQueue(SessionLocal, pooler=os.environ.get("SQLJOBS_REL_POOLER") or None)  # type: ignore[arg-type]

metadata = MetaData()
#: One row per applied attempt of ``apply``: a key seen twice is a job applied twice.
ledger = Table(
    "rel_ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", Integer, nullable=False, index=True),
    Column("pid", Integer, nullable=False),
)


@jobs.task(name="apply", max_attempts=50, backoff=Backoff(base=0.05, max=1, jitter=0))
def apply(session: Session, key: int, hold: float = 0.0) -> None:
    """Record ``key`` in the ledger and bump a counter, in the job's own session."""
    session.execute(insert(ledger).values(key=key, pid=os.getpid()))
    increment(session, 1 + key % 10)
    if hold:
        time.sleep(hold)


@jobs.task(name="noop", max_attempts=50)
def noop(key: int) -> int:
    """A task without a session: completed in batches by the worker's completer thread."""
    return key


# -- hostile tasks ------------------------------------------------------------------------


#: The counter hostile tasks bump (``apply`` uses 1-10).
HOSTILE_COUNTER = 11


class Explosion(BaseException):
    """Not an Exception: slips past every ``except Exception``."""


@jobs.task(name="raise_base_exception", max_attempts=1)
def raise_base_exception(session: Session) -> None:
    increment(session, HOSTILE_COUNTER)
    raise Explosion("a BaseException from the task")


@jobs.task(name="raise_system_exit", max_attempts=1)
def raise_system_exit(session: Session) -> None:
    increment(session, HOSTILE_COUNTER)
    raise SystemExit(3)


@jobs.task(name="raise_keyboard_interrupt", max_attempts=1)
def raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt


_forever = threading.Event()


@jobs.task(name="never_return", max_attempts=1, timeout=1)
def never_return() -> None:
    _forever.wait()  # never set: its thread is left behind, the job must not be


@jobs.task(name="non_json_result", max_attempts=1)
def non_json_result(session: Session) -> Any:
    increment(session, HOSTILE_COUNTER)
    return {"when": object()}


@jobs.task(name="close_own_session", max_attempts=1)
def close_own_session(session: Session) -> str:
    increment(session, HOSTILE_COUNTER)
    session.close()
    return "closed"


@jobs.task(name="commit_own_session", max_attempts=1)
def commit_own_session(session: Session) -> str:
    increment(session, HOSTILE_COUNTER)
    session.commit()
    return "committed"


@jobs.task(name="rollback_own_session", max_attempts=1)
def rollback_own_session(session: Session) -> str:
    increment(session, HOSTILE_COUNTER)
    session.rollback()
    return "rolled back"


def _sample_forever(path: str, every: float) -> None:
    while True:
        with open("/proc/self/statm") as statm:
            rss_pages = int(statm.read().split()[1])
        sample = {
            "t": time.time(),
            "threads": threading.active_count(),
            "checked_out": engine.pool.checkedout(),  # type: ignore[attr-defined]
            "rss_mb": round(rss_pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 2),
            "fds": len(os.listdir("/proc/self/fd")),
        }
        with open(path, "a") as out:
            out.write(json.dumps(sample) + "\n")
        time.sleep(every)


if os.environ.get("SQLJOBS_REL_SAMPLES"):
    threading.Thread(
        target=_sample_forever,
        args=(
            os.environ["SQLJOBS_REL_SAMPLES"],
            float(os.environ.get("SQLJOBS_REL_SAMPLE_EVERY", "1")),
        ),
        name="rel-sampler",
        daemon=True,
    ).start()
