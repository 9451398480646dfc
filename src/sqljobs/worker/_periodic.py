"""A daemon thread that calls one function every ``interval`` seconds until stopped: the
shared loop of the heartbeat and the watchdog."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("sqljobs.worker")


class PeriodicThread:
    """Calls ``tick`` every ``interval`` seconds. A failing tick never ends the loop: it is
    logged (``expected`` errors in one line, others with their traceback), reported to
    ``on_error``, and tried again at the next interval."""

    def __init__(
        self,
        *,
        name: str,
        what: str,
        interval: float,
        tick: Callable[[], None],
        on_error: Callable[[BaseException], None],
        expected: tuple[type[Exception], ...] = (),
    ) -> None:
        self._what = what
        self._interval = interval
        self._tick = tick
        self._on_error = on_error
        self._expected = expected
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout=timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._tick()
            except self._expected as exc:
                log.error("%s failed (%s); will try again", self._what, exc)
                self._on_error(exc)
            except Exception as exc:  # never let the loop stop silently
                log.exception("%s failed unexpectedly; will try again", self._what)
                self._on_error(exc)
