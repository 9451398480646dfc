"""Counters of one worker, updated by its executors and completer."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from ._outcomes import Cancelled, Completed, Failed, LeaseLost, Outcome


@dataclass
class WorkerStats:
    """Counters of one worker since it started."""

    claimed: int = 0
    completed: int = 0
    failed: int = 0
    discarded: int = 0
    cancelled: int = 0
    lease_lost: int = 0
    started_at: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def count(self, outcome: Outcome) -> None:
        """Count one stored outcome."""
        with self._lock:
            if isinstance(outcome, Completed):
                self.completed += 1
            elif isinstance(outcome, Failed):
                if outcome.retry_at is None:
                    self.discarded += 1
                else:
                    self.failed += 1
            elif isinstance(outcome, Cancelled):
                self.cancelled += 1
            elif isinstance(outcome, LeaseLost):
                self.lease_lost += 1
