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

#: Attributes every LogRecord has; anything else was passed with ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """Format records as JSON lines: ``time``, ``level``, ``logger``, ``message``, the
    ``sqljobs`` fields (``job_id``, ``task``, ``queue``, ``attempt``, ``outcome``,
    ``duration``, ``error``...), other ``extra=`` values and ``exc_info`` as ``traceback``.

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
        for key, value in vars(record).items():
            if key not in _STANDARD and key != "sqljobs" and key not in entry:
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
