"""The jobs one worker holds: claimed and waiting for an executor, running, or ran and
waiting for their batched completion. Shared by the claimer, executors, completer and
heartbeat; every read and change goes through one lock."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..context import JobContext
from ..jobs import Job
from ._watch import AttemptWatch


@dataclass
class HeldJob:
    """A job this worker claimed: waiting for an executor (``started`` is None) or running."""

    job: Job
    timeout: float | None
    ctx: JobContext
    started: float | None = None
    deadline: float | None = None
    #: Ran; its completion waits for the completer's next batch.
    ran: bool = False
    #: When it was claimed (monotonic): a job waiting longer is given back (see Heartbeat).
    claimed: float = field(default_factory=time.monotonic)
    #: A sync task: past its deadline the watchdog ends it (async tasks are cancelled).
    sync: bool = False
    #: The running attempt's watch (set when it starts).
    watch: AttemptWatch | None = None

    def start(self) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + self.timeout if self.timeout else None
        self.watch = AttemptWatch()


#: Most ids :meth:`HeldJobs.leave_to_rescue` remembers (a long outage's worth).
_MOST_LEFT = 10_000


class HeldJobs:
    """The table of held jobs, by id.

    Args:
        on_freed: called after jobs were forgotten (room for new ones: wakes the claimer).
    """

    def __init__(self, *, on_freed: Callable[[], None]) -> None:
        self._entries: dict[int, HeldJob] = {}
        #: Jobs forgotten because their outcome could not be stored: rescue takes them.
        self._left: deque[int] = deque(maxlen=_MOST_LEFT)
        self._lock = threading.Lock()
        self._emptied = threading.Condition(self._lock)
        self._on_freed = on_freed

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def add(
        self,
        jobs: Iterable[Job],
        timeout_of: Callable[[Job], float | None],
        is_sync: Callable[[Job], bool] = lambda _: False,
    ) -> None:
        with self._lock:
            for job in jobs:
                entry = HeldJob(job, timeout_of(job), JobContext(job), sync=is_sync(job))
                self._entries[job.id] = entry

    def start(self, job: Job) -> HeldJob | None:
        """Mark ``job`` as running now; None if it is no longer held."""
        with self._lock:
            entry = self._entries.get(job.id)
            if entry is not None:
                entry.start()
            return entry

    def mark_ran(self, entry: HeldJob) -> None:
        """The job ran and only waits for its completion: it takes no more claim room."""
        with self._lock:
            entry.ran = True

    def leave_to_rescue(self, jobs: Iterable[Job]) -> None:
        """``jobs`` ran but their outcome could not be stored: forget them, and remember
        that rescue is to take them (counting the attempt), not a give-back."""
        with self._emptied:
            for job in jobs:
                self._entries.pop(job.id, None)
                self._left.append(job.id)
            self._emptied.notify_all()
        self._on_freed()

    def left_to_rescue(self) -> list[int]:
        with self._lock:
            return list(self._left)

    def forget(self, jobs: Iterable[Job]) -> None:
        with self._emptied:
            for job in jobs:
                self._entries.pop(job.id, None)
            self._emptied.notify_all()
        self._on_freed()

    def holding(self) -> int:
        """Jobs running or waiting for an executor; a job that ran and only waits for its
        batched completion holds no slot's worth of room."""
        with self._lock:
            return self._holding()

    def occupancy(self) -> tuple[Counter[str], int]:
        """Held jobs per queue (all of them) and :meth:`holding`, read at one instant."""
        with self._lock:
            per_queue = Counter(entry.job.queue for entry in self._entries.values())
            return per_queue, self._holding()

    def overdue(self, now: float) -> list[HeldJob]:
        """Running sync attempts past their deadline (monotonic ``now``)."""
        with self._lock:
            return [
                entry
                for entry in self._entries.values()
                if entry.sync
                and not entry.ran
                and entry.deadline is not None
                and entry.deadline < now
            ]

    def abandon(self, entry: HeldJob) -> None:
        """Forget ``entry`` (its attempt was timed out), not a later attempt of its job."""
        with self._emptied:
            if self._entries.get(entry.job.id) is entry:
                del self._entries[entry.job.id]
            self._emptied.notify_all()
        self._on_freed()

    def entries(self) -> list[tuple[int, HeldJob]]:
        with self._lock:
            return list(self._entries.items())

    def jobs(self) -> list[Job]:
        with self._lock:
            return [entry.job for entry in self._entries.values()]

    def wait_until_empty(self, deadline: float) -> bool:
        """Wait until no job is held or ``deadline`` (monotonic) passes; True if empty."""
        with self._emptied:
            while self._entries:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._emptied.wait(timeout=remaining)
            return True

    def _holding(self) -> int:
        return sum(1 for entry in self._entries.values() if not entry.ran)
