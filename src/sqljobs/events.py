"""Named events and a tiny synchronous pub/sub that metrics and logging subscribe to.

Example:
    >>> from sqljobs import events
    >>> seen = []
    >>> bus = events.EventBus()
    >>> unsubscribe = bus.subscribe(events.JOB_COMPLETED, lambda name, data: seen.append(data))
    >>> bus.emit(events.JOB_COMPLETED, job_id=1)
    >>> seen
    [{'job_id': 1}]
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("sqljobs.events")

JOB_ENQUEUED = "sqljobs.job.enqueued"
JOB_STARTED = "sqljobs.job.started"
JOB_COMPLETED = "sqljobs.job.completed"
JOB_FAILED = "sqljobs.job.failed"  # will be retried
JOB_DISCARDED = "sqljobs.job.discarded"
JOB_CANCELLED = "sqljobs.job.cancelled"
JOB_SNOOZED = "sqljobs.job.snoozed"
JOB_LEASE_LOST = "sqljobs.job.lease_lost"
JOB_RESCUED = "sqljobs.job.rescued"
JOB_RETRIED = "sqljobs.job.retried"  # an operator asked for another run
WORKER_STARTED = "sqljobs.worker.started"
#: stop() began: no more claims; ``running`` jobs get the grace period to finish.
WORKER_STOPPING = "sqljobs.worker.stopping"
WORKER_STOPPED = "sqljobs.worker.stopped"
WORKER_ERROR = "sqljobs.worker.error"
#: The claimer waits: ``reason`` is "no jobs" (its last claim found none), "no room"
#: (every slot is taken) or "paused" (every queue it serves is paused). It claims again when
#: woken (an enqueue in this process, a PostgreSQL NOTIFY, a job finishing) or after
#: ``poll_interval``.
WORKER_IDLE = "sqljobs.worker.idle"
#: PostgreSQL only: the worker's LISTEN connection is ready; enqueues anywhere wake it now.
WORKER_LISTENING = "sqljobs.worker.listening"
#: PostgreSQL only: notifications do not reach the worker (a pooler in transaction mode); it
#: polls every ``poll_interval`` instead. ``reason`` says why and what to configure.
WORKER_POLLING = "sqljobs.worker.polling"

Handler = Callable[[str, dict[str, Any]], None]


class EventBus:
    """Calls subscribers in the emitting thread; a failing subscriber is logged, not raised."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._lock = threading.Lock()

    def subscribe(self, name: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(name, data)`` on each ``name`` event (``"*"`` for all); returns an
        unsubscribe function."""
        with self._lock:
            self._handlers.setdefault(name, []).append(handler)

        def unsubscribe() -> None:
            with self._lock:
                handlers = self._handlers.get(name, [])
                if handler in handlers:
                    handlers.remove(handler)

        return unsubscribe

    def emit(self, name: str, **data: Any) -> None:
        handlers = self._handlers.get(name, []) + self._handlers.get("*", [])
        for handler in handlers:
            try:
                handler(name, data)
            except Exception:
                log.exception("sqljobs event handler %r failed on %s", handler, name)
