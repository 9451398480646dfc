"""The small interface every contender implements."""

from __future__ import annotations

import time
import uuid
from abc import ABC, abstractmethod
from importlib import metadata

from sqlalchemy.orm import Session

from bench.db import request_engine
from bench.jobbody import job_args, record_request
from bench.settings import PG_URL, Settings


class Contender(ABC):
    """A way to run the benchmark job in the background.

    Lifecycle: ``setup()`` once (schemas, counters), ``start(processes)`` its workers,
    ``enqueue(...)`` jobs (each job reports through marker files), ``reset()`` between
    workloads, ``stop()``. ``check()`` returns what the system's own bookkeeping says about
    unfinished or failed jobs, if it has any.
    """

    name: str = "?"
    #: Where the ``counters`` table lives (the job's database work).
    db_url: str = PG_URL
    #: Jobs survive a restart of the process that enqueued them.
    durable: bool = True
    #: Cap on W2h jobs, for a system that can only run them one at a time (SQLite).
    max_hold_jobs: int | None = None
    #: Packages whose versions the report lists.
    packages: tuple[str, ...] = ()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def supports(self, workload: str) -> bool:
        return True

    @abstractmethod
    def setup(self) -> None: ...

    @abstractmethod
    def start(self, processes: int = 1) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    def reset(self) -> None:  # noqa: B027 - optional hook
        """Forget finished jobs between workloads (workers may be running)."""

    @abstractmethod
    def enqueue(self, run: str, i: int, mode: str, hold_ms: int, t0: float) -> None: ...

    def enqueue_bulk(self, run: str, count: int, mode: str, hold_ms: int = 0) -> None:
        """Enqueue ``count`` jobs in as few round trips as the system allows."""
        for i in range(count):
            self.enqueue(run, i, mode, hold_ms, time.time())

    def request(self, run: str, i: int, t0: float) -> None:
        """W4: a request writes its own row and hands an ``update`` job over. Without a
        transactional enqueue that is what an app must do: commit its write, then enqueue
        (a crash in between loses the job; systems that can enqueue in the request's
        transaction override this)."""
        with Session(request_engine(self.db_url)) as session:
            record_request(session, run, i)
            session.commit()
        self.enqueue(run, i, "update", 0, t0)

    def has_bulk(self) -> bool:
        return False

    def check(self) -> str:
        return ""

    def settings_note(self) -> str:
        return ""

    def versions(self) -> str:
        found = []
        for package in self.packages:
            try:
                found.append(f"{package} {metadata.version(package)}")
            except metadata.PackageNotFoundError:
                found.append(f"{package} ?")
        return ", ".join(found)


def new_run(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


__all__ = ["Contender", "job_args", "new_run"]
