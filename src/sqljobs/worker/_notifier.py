"""PostgreSQL LISTEN/NOTIFY: wake workers the moment a job is committed, instead of at the
next poll. Enqueues ``pg_notify`` in their own transaction, so a rolled-back enqueue wakes
nobody. Polling stays as the fallback (and the only mechanism on other databases)."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine

from ..store import NOTIFY_CHANNEL

log = logging.getLogger("sqljobs.worker")


class NotificationsUnavailable(Exception):
    """A notification sent on another connection never reached the LISTEN connection."""


class NotificationListener:
    """Runs in its own thread on its own connection (detached from the engine's pool)."""

    def __init__(
        self,
        engine: Engine,
        on_queue: Callable[[str], None],
        *,
        on_listening: Callable[[], None] = lambda: None,
        wake: Callable[[], None] = lambda: None,
        check_every: float = 1.0,
        probe: Callable[[str], None] | None = None,
        probe_seconds: float = 5.0,
        on_unavailable: Callable[[str], None] = lambda why: None,
    ) -> None:
        """``probe``: sends a notification on a channel on another connection; given, the
        listener first checks that one reaches it (it does not through a pooler in
        transaction mode) and otherwise reports ``on_unavailable`` and stops."""
        self._engine = engine
        self._on_queue = on_queue
        self._on_listening = on_listening
        self._check_every = check_every
        self._wake = wake
        self._stop = threading.Event()
        self._probe = probe
        self._probe_seconds = probe_seconds
        self._on_unavailable = on_unavailable
        self.listening = threading.Event()

    def stop(self) -> None:
        """Stop listening; ``wake`` (a notification) makes the thread return now instead of
        at its next check."""
        self._stop.set()
        if self.listening.is_set():
            try:
                self._wake()
            except Exception as exc:  # it still returns within check_every
                log.debug("could not wake the LISTEN thread: %s", exc)

    def run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._listen()
                failures = 0
            except NotificationsUnavailable as exc:
                log.warning("%s", exc)
                self._on_unavailable(str(exc))
                return
            except Exception as exc:
                failures += 1
                pause = min(0.5 * 2**failures, 30.0)
                log.warning(
                    "LISTEN connection failed (%s); polling until it is back in %.1fs", exc, pause
                )
                self._stop.wait(pause)

    def _listen(self) -> None:
        raw = self._engine.raw_connection()
        connection: Any = raw.driver_connection
        raw.detach()  # a LISTENing session must not go back to the pool for others to use
        try:
            connection.rollback()
            connection.autocommit = True
            if self._probe is not None:
                self._check_notifications_arrive(connection, self._probe)
            connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self.listening.set()
            self._on_listening()
            while not self._stop.is_set():
                for notification in connection.notifies(timeout=self._check_every):
                    if self._stop.is_set():
                        break
                    if notification.payload:
                        self._on_queue(str(notification.payload))
        finally:
            self.listening.clear()
            connection.close()

    def _check_notifications_arrive(self, connection: Any, probe: Callable[[str], None]) -> None:
        """LISTEN on a private channel, have another connection notify it, wait for it.

        Behind a transaction-pooling PgBouncer this client holds no server connection between
        statements, so the notification never arrives: raise. (The LISTEN stays on whichever
        server connection ran it, on a channel nobody else uses: harmless.)"""
        channel = f"sqljobs_probe_{uuid.uuid4().hex[:16]}"
        connection.execute(f"LISTEN {channel}")
        probe(channel)
        # The generator holds the connection's lock: let it end before the next statement.
        arrived = [
            n.channel for n in connection.notifies(timeout=self._probe_seconds, stop_after=1)
        ]
        if channel in arrived:
            connection.execute(f"UNLISTEN {channel}")
            return
        raise NotificationsUnavailable(
            "LISTEN/NOTIFY does not reach this worker: a notification sent on another "
            "connection never arrived (is the engine behind PgBouncer in transaction mode?). "
            "Polling every poll_interval instead; give JobQueue(listen=<direct PostgreSQL "
            "URL>) a connection that bypasses the pooler for instant wake-ups, or "
            "JobQueue(pooler='transaction') to skip this check"
        )
