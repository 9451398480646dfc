"""The benchmark job as a sqljobs task. ``sqljobs worker bench.apps.sqljobs_app:jobs``
reads the database URL from ``BENCH_SQLJOBS_URL``."""

from __future__ import annotations

import os
import time
from functools import cache
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

import sqljobs
from bench.jobbody import do_work, mark_done, mark_error


@cache
def make_queue(url: str) -> tuple[sqljobs.JobQueue, dict[str, sqljobs.Task[..., Any]]]:
    """The queue and its two bench tasks: ``noop`` declares no session (as a task that does
    no database work would), the others run their work in the session sqljobs gives them."""
    engine = create_engine(url)
    jobs = sqljobs.JobQueue(sessionmaker(engine))

    @jobs.task(name="bench.job", max_attempts=5)
    def bench_job(session: Session, run: str, i: int, mode: str, hold_ms: int, t0: float) -> None:
        started = time.time()
        try:
            do_work(session, i, mode, hold_ms)
        except Exception as exc:
            mark_error(run, i, exc)
            raise
        mark_done(run, i, started)

    @jobs.task(name="bench.noop", max_attempts=5)
    def bench_noop(run: str, i: int, mode: str, hold_ms: int, t0: float) -> None:
        mark_done(run, i, time.time())

    return jobs, {"noop": bench_noop, "update": bench_job, "hold": bench_job}


def __getattr__(name: str) -> Any:
    if name == "jobs":
        return make_queue(os.environ["BENCH_SQLJOBS_URL"])[0]
    raise AttributeError(name)
