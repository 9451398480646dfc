"""Unique jobs: at most one job per key, enforced by a unique index in the database.

Example:
    >>> @jobs.task(unique=Unique(by_args=["user_id"], period=timedelta(minutes=10)))
    ... def send_digest(user_id: int, force: bool = False) -> None: ...       # doctest: +SKIP
    >>> first = send_digest.enqueue(user_id=1)                                 # doctest: +SKIP
    >>> send_digest.enqueue(user_id=1, force=True) == first   # same key, same job  # doctest: +SKIP
    True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ._utils import Duration, to_seconds

Scope = Literal["waiting", "active", "all"]
SCOPES: tuple[Scope, ...] = ("waiting", "active", "all")


@dataclass(frozen=True, slots=True)
class Unique:
    """How a task's jobs are kept unique.

    Args:
        by_args: ``True``: all arguments make the key; a list: only these arguments;
            ``False``: the task name alone (one job of this task at a time).
        scope: how long a job holds its key: ``"waiting"`` until it starts, ``"active"``
            (default) until it finishes, ``"all"`` until it is pruned.
        period: if given, the key also holds the time bucket of this length the job was
            enqueued in, so one job per period (e.g. one digest per user per 10 minutes).
    """

    by_args: bool | Sequence[str] = True
    scope: Scope = "active"
    period: Duration | None = None

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"unique scope must be one of {SCOPES}, got {self.scope!r}")
        if self.period is not None and to_seconds(self.period, name="unique period") <= 0:
            raise ValueError("unique period must be positive")

    def key(self, task: str, args: dict[str, Any], now: datetime) -> str:
        if self.by_args is True:
            chosen = args
        elif self.by_args is False:
            chosen = {}
        else:
            chosen = {name: args.get(name) for name in self.by_args}
        text = task + ":" + json.dumps(chosen, sort_keys=True, separators=(",", ":"))
        if self.period is not None:
            seconds = to_seconds(self.period, name="unique period")
            text += f"@{int(now.timestamp() // seconds)}"
        return key_digest(text)


def key_digest(text: str) -> str:
    """Keys of any length fit the 255-character column: long ones are hashed."""
    if len(text) <= 200:
        return text
    return text[:120] + "#" + hashlib.sha256(text.encode()).hexdigest()
