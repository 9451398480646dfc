"""Claim room: one slot per job a worker may hold, running or waiting for an executor."""

from __future__ import annotations

import threading
from collections.abc import Callable

#: How long :meth:`Slots.gather` waits for another slot while claimed jobs are still queued.
GATHER_WAIT_SECONDS = 0.05


class Slots:
    """A counting semaphore of claim room (``concurrency + prefetch`` slots)."""

    def __init__(self, size: int) -> None:
        self._free = threading.Semaphore(size)

    def acquire(self, timeout: float) -> bool:
        return self._free.acquire(timeout=timeout)

    def gather(self, capacity: int, *, more_coming: Callable[[], bool]) -> int:
        """Called holding one free slot: take free ones, up to ``capacity``. While
        ``more_coming()`` (claimed jobs still wait for an executor), wait until half of the
        capacity is free, so that one claim round trip fetches a batch instead of a job per
        freed executor."""
        batch = max(1, capacity // 2)
        free = 1
        while free < capacity:
            if self._free.acquire(blocking=False):
                free += 1
            elif free < batch and more_coming():
                if self._free.acquire(timeout=GATHER_WAIT_SECONDS):
                    free += 1
            else:
                break
        return free

    def release(self, count: int = 1) -> None:
        for _ in range(count):
            self._free.release()
