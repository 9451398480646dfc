"""Per-job logs: the log lines a task emits during an attempt, kept with the attempt.

While an attempt runs, two kinds of lines are collected for it (docs/logs.md):

- lines logged through ``ctx.logger`` (the task's :class:`~sqljobs.JobContext` logger), at
  :attr:`LogLimits.level` or above whatever the logging configuration says;
- records of the standard ``logging`` module emitted in the task's own thread (or async
  task), as far as the logging configuration lets them reach the root logger's handlers.

A line logged by another thread (one the task started, or any other) is not the job's and is
not collected. Each attempt keeps at most :attr:`LogLimits.lines` lines and
:attr:`LogLimits.bytes` bytes of messages; what is over the limit is dropped and counted in a
last line, ``N lines dropped``. The worker stores the lines when the attempt ends, in a
transaction of its own, so a failed attempt keeps its logs. Read them with
``jobs.logs(job_id)``.

Example:
    >>> limits = LogLimits(lines=2, bytes=1000)
    >>> log = AttemptLog(job_id=1, attempt=1, limits=limits)
    >>> for n in range(4):
    ...     log.add_line(logging.INFO, "app", f"line {n}")
    >>> [line.message for line in log.lines()]
    ['line 0', 'line 1', '2 lines dropped (over the limit of 2 lines or 1000 bytes per attempt)']
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

#: ``extra=`` key marking a record ``ctx.logger`` collected already (not collected twice).
KEPT = "sqljobs_kept"
#: The logger name of the last line that counts dropped lines.
DROPPED_LOGGER = "sqljobs.logs"
#: Level names are stored in 16 characters, logger names in 255.
_MAX_LEVEL = 16
_MAX_LOGGER = 255


@dataclass(frozen=True, slots=True)
class JobLogLine:
    """One stored log line of a job: read them with ``jobs.logs(job_id)``."""

    attempt: int
    at: datetime
    #: ``INFO``, ``WARNING``, ...
    level: str
    logger: str
    message: str


@dataclass(frozen=True, slots=True)
class LogLimits:
    """How much of an attempt's logging is kept: ``JobQueue(..., job_logs=LogLimits(...))``.

    Args:
        lines: most lines per attempt (the line counting dropped ones comes on top).
        bytes: most bytes (UTF-8) of messages per attempt; a longer message is cut.
        level: ``ctx.logger`` lines at this level or above are kept.
    """

    lines: int = 200
    bytes: int = 64_000
    level: int = logging.INFO

    def __post_init__(self) -> None:
        for name in ("lines", "bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"LogLimits({name}=...) is a positive int, got {value!r}; to keep no "
                    "logs at all pass JobQueue(..., job_logs=None)"
                )
        if isinstance(self.level, bool) or not isinstance(self.level, int):
            raise ValueError(
                f"LogLimits(level=...) is a logging level (logging.INFO), got {self.level!r}"
            )


class AttemptLog:
    """The lines of one attempt, bounded by its :class:`LogLimits`. Thread-safe."""

    def __init__(self, *, job_id: int, attempt: int, limits: LogLimits) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.limits = limits
        self._lines: list[JobLogLine] = []
        self._size = 0
        self._dropped = 0
        self._lock = threading.Lock()

    def add_line(self, level: int, logger: str, message: str, at: datetime | None = None) -> None:
        encoded = message.encode("utf-8", "replace")
        with self._lock:
            room = self.limits.bytes - self._size
            if len(self._lines) >= self.limits.lines or room <= 0:
                self._dropped += 1
                return
            if len(encoded) > room:
                message = encoded[:room].decode("utf-8", "ignore")
                encoded = message.encode("utf-8")
            self._size += len(encoded)
            self._lines.append(
                JobLogLine(
                    attempt=self.attempt,
                    at=at or datetime.now(timezone.utc),
                    level=logging.getLevelName(level)[:_MAX_LEVEL],
                    logger=logger[:_MAX_LOGGER],
                    message=message.replace("\x00", "\ufffd"),
                )
            )

    def add(self, record: logging.LogRecord) -> None:
        """Collect ``record`` (its message, with its traceback if it has one)."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what was given
            message = f"{record.msg!r} % {record.args!r}"
        if record.exc_info:
            message = f"{message}\n{_formatter.formatException(record.exc_info)}"
        at = datetime.fromtimestamp(record.created, timezone.utc)
        self.add_line(record.levelno, record.name, message, at)

    def lines(self) -> list[JobLogLine]:
        """The kept lines, and a last one saying how many were dropped (if any were)."""
        with self._lock:
            kept = list(self._lines)
            dropped = self._dropped
        if dropped:
            kept.append(
                JobLogLine(
                    attempt=self.attempt,
                    at=datetime.now(timezone.utc),
                    level="WARNING",
                    logger=DROPPED_LOGGER,
                    message=f"{dropped} lines dropped (over the limit of {self.limits.lines} "
                    f"lines or {self.limits.bytes} bytes per attempt)",
                )
            )
        return kept


_formatter = logging.Formatter()

#: The attempt whose task runs in this thread (or async task), while it runs.
_current: ContextVar[AttemptLog | None] = ContextVar("sqljobs_attempt_log", default=None)


def current_log() -> AttemptLog | None:
    """The log of the attempt running here, if any."""
    return _current.get()


class _CaptureHandler(logging.Handler):
    """On the root logger: hands each record emitted in an attempt's context to its log."""

    def emit(self, record: logging.LogRecord) -> None:
        log = _current.get()
        if log is not None and not getattr(record, KEPT, False):
            log.add(record)
        last_resort = logging.lastResort
        if last_resort is not None and record.levelno >= last_resort.level and _alone(record):
            # Without this handler logging would have printed the record to stderr (no
            # handler configured): it still does.
            last_resort.handle(record)


def _alone(record: logging.LogRecord) -> bool:
    """No handler but the capture handler would see ``record``."""
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        if any(handler is not _handler for handler in logger.handlers):
            return False
        if not logger.propagate:
            return True
        logger = logger.parent
    return True


_handler = _CaptureHandler()
_install_lock = threading.Lock()


def _install() -> None:
    """Put the capture handler on the root logger (once; again if a logging set-up that
    replaced the root's handlers removed it)."""
    root = logging.getLogger()
    if _handler in root.handlers:
        return
    with _install_lock:
        if _handler not in root.handlers:
            root.addHandler(_handler)


@contextmanager
def capturing(log: AttemptLog) -> Iterator[AttemptLog]:
    """Collect what is logged in this context into ``log`` while the block runs."""
    _install()
    token = _current.set(log)
    try:
        yield log
    finally:
        _current.reset(token)


class JobLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """``ctx.logger``: a logger adapter whose lines are also kept with the attempt (at the
    limits' level or above, whatever the logging configuration) and carry the job's fields
    (``job_id``, ``task``, ``attempt``) under ``record.sqljobs``."""

    def __init__(self, logger: logging.Logger, fields: dict[str, Any], job_id: int) -> None:
        super().__init__(logger, {"sqljobs": fields, KEPT: True})
        self._job_id = job_id

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        log = _current.get()
        if log is not None and log.job_id == self._job_id and level >= log.limits.level:
            record = self.logger.makeRecord(
                self.logger.name, level, "", 0, msg, args, _exc_info(kwargs.get("exc_info"))
            )
            log.add(record)
        # One frame more than LoggerAdapter: the record names the task's line, not this one.
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
        super().log(level, msg, *args, **kwargs)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        kwargs["extra"] = {**(kwargs.get("extra") or {}), **(self.extra or {})}
        return msg, kwargs


def _exc_info(value: Any) -> Any:
    import sys

    if value is True:
        return sys.exc_info()
    if isinstance(value, BaseException):
        return (type(value), value, value.__traceback__)
    return value or None
