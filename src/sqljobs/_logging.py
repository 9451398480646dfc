"""Structured logs: every attempt is one record with its fields under ``record.sqljobs``.

The runner logs each attempt on the ``sqljobs.worker`` logger with
``extra={"sqljobs": {"job_id", "task", "queue", "attempt", "outcome", "duration", ...}}``.
:class:`JsonFormatter` turns any record into one JSON line and lifts those fields to the top
level, so a log pipeline can index them without parsing the message.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

from .job_logs import KEPT, current_log
from .otel import current_ids
from .worker._runner import running_job

#: Attributes every LogRecord has; anything else was passed with ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


#: ``extra=`` keys of sqljobs' own that are not written as fields.
_OWN = frozenset({"sqljobs", KEPT})


def running_job_id() -> int | None:
    """The id of the job whose attempt runs in this thread (or async task), if any."""
    attempt_log = current_log()
    if attempt_log is not None:
        return attempt_log.job_id
    job = running_job()
    return job.id if job is not None else None


class JsonFormatter(logging.Formatter):
    """Format records as JSON lines: ``time``, ``level``, ``logger``, ``message``, the
    ``sqljobs`` fields (``job_id``, ``task``, ``queue``, ``attempt``, ``outcome``,
    ``duration``, ``error``...), other ``extra=`` values and ``exc_info`` as ``traceback``.
    A record logged while a job's attempt runs carries its ``job_id``; one logged while an
    OpenTelemetry span is current carries ``trace_id`` and ``span_id`` (hex, as trace
    backends show them; docs/tracing.md). Both are read in the logging thread, as a
    ``StreamHandler`` formats them.

    Example:
        >>> handler = logging.StreamHandler()
        >>> handler.setFormatter(JsonFormatter())
        >>> logging.getLogger("sqljobs").addHandler(handler)
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "sqljobs", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if "job_id" not in entry:
            job_id = running_job_id()
            if job_id is not None:
                entry["job_id"] = job_id
        ids = current_ids()
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in _OWN and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(level: str | int = "INFO", *, json_lines: bool = False) -> None:
    """Set up root logging for a sqljobs process (the CLI's ``--log-format``)."""
    handler = logging.StreamHandler()
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
