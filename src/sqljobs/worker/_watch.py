"""One running attempt's watch: who ends it, the executor (its task returned) or the watchdog
(it hung past its timeout, or lost its lease). One lock decides, so a session's connection is
either returned to the pool by its executor or ended by the watchdog, never both."""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..store import SessionConnection


class AttemptWatch:
    """Created when an attempt starts, in its executor thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection: SessionConnection | None = None
        self._settled = False
        #: The thread running the attempt.
        self.thread = threading.current_thread()
        #: Its session's connection was ended from outside: it must be discarded, not reused.
        self.ended = False
        #: The watchdog recorded the attempt's outcome (timed out): the task's is ignored.
        self.abandoned = False

    def attach(self, connection: SessionConnection) -> bool:
        """The attempt's session got ``connection``; False if the attempt was ended already
        (then the task must not use it)."""
        with self._lock:
            if self.ended:
                return False
            self._connection = connection
            return True

    def settle(self) -> SessionConnection | None:
        """The task returned and its session is done: nothing may end it from now on. Read
        :attr:`ended` and :attr:`abandoned` after this; they no longer change. Returns the
        connection that was ended, for its thread to close."""
        with self._lock:
            self._settled = True
            return self._connection if self.ended else None

    def end(self, end_connection: Callable[[SessionConnection], None], *, abandon: bool) -> bool:
        """End the attempt's database work (once) unless its task already returned; with
        ``abandon`` the caller takes over recording its outcome. True if it did either.
        ``end_connection`` runs under the lock, so the executor cannot return that connection
        to the pool meanwhile."""
        with self._lock:
            if self._settled or self.abandoned:
                return False
            if not self.ended and self._connection is not None:
                end_connection(self._connection)
            self.ended = True
            self.abandoned = abandon
            return True
