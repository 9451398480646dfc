"""The Python floor: the same job body (new Session, the work, commit, close) on
``concurrency`` threads of one ``ThreadPoolExecutor`` in the enqueuing process. No queue, no
bookkeeping, nothing durable: what the job itself costs in Python on this machine, which no
queue running it can beat. Every sqljobs figure is also reported as a ratio to it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from bench.contenders.naive import InMemoryContender
from bench.settings import Settings


class ThreadPoolFloor(InMemoryContender):
    def __init__(self, settings: Settings, *, name: str, dialect: str) -> None:
        super().__init__(settings, name=name, dialect=dialect)
        self.pool: ThreadPoolExecutor | None = None

    def start(self, processes: int = 1) -> None:
        self.pool = ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="floor")

    def stop(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None
        self.engine.dispose()

    def enqueue(self, run: str, i: int, mode: str, hold_ms: int, t0: float) -> None:
        if self.pool is None:
            raise RuntimeError("the floor's thread pool is not started")
        self.pool.submit(self._work, run, i, mode, hold_ms, t0)

    def settings_note(self) -> str:
        return f"{self.settings.concurrency} threads (ThreadPoolExecutor), no queue, in memory"
