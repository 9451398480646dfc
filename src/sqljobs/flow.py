"""Per-key flow control and debounce: the rules a task declares, and the keys they make.

Example:
    >>> @jobs.task(limit=KeyLimit(by_args=["user_id"], concurrency=1))     # doctest: +SKIP
    ... def sync_mailbox(user_id: int) -> None: ...
    >>> @jobs.task(debounce=Debounce(by_args=["doc_id"], window=5))         # doctest: +SKIP
    ... def reindex(doc_id: int, text: str) -> None: ...

A key is the rule's name (the task's name unless given) and the chosen arguments as ASCII
JSON, so any argument value makes a key that fits every database (NUL and surrogates are
escaped); a key longer than 200 characters is stored as a prefix and a SHA-256 digest.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._utils import Duration, to_seconds
from .exceptions import ConfigurationError
from .jobs import FlowRule
from .unique import key_digest

#: Unique keys of debounced jobs start with this; task names (``module.qualname``) never do,
#: so a debounce key never meets a :class:`~sqljobs.Unique` key.
DEBOUNCE_PREFIX = "~debounce:"
#: The ``unique_scope`` of a debounced job: held while it waits, released when it is claimed
#: (like ``"waiting"``), and not restored by ``jobs.retry``.
DEBOUNCE_SCOPE = "debounce"


@dataclass(frozen=True, slots=True)
class KeyLimit:
    """Limits on the running jobs of each key, across every worker process.

    Args:
        by_args: the arguments whose values make the key (``["user_id"]``); ``False``: one
            key for the whole rule; ``enqueue(limit_key="...")`` gives the key directly.
        concurrency: at most this many jobs of one key run at once (None: no such limit).
        fifo: strict ordering: one job of the key at a time, in enqueue order. A head job
            that waits for a retry blocks its key until it completes or is discarded.
        rate: ``(n, period)``: at most ``n`` jobs of one key start per ``period``.
        name: the key's namespace (default: the task's name). Tasks whose rules share a
            name share their keys: ``KeyLimit(by_args=["tenant_id"], name="tenant", ...)``
            on two tasks limits a tenant's jobs of both together.

    Example:
        >>> @jobs.task(limit=KeyLimit(by_args=["tenant_id"], rate=(10, 60)))  # doctest: +SKIP
        ... def export(tenant_id: int) -> None: ...
    """

    by_args: bool | Sequence[str] = False
    concurrency: int | None = None
    fifo: bool = False
    rate: tuple[int, Duration] | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.by_args, str):
            raise ConfigurationError(
                f"KeyLimit(by_args=...) takes a list of parameter names, got the string "
                f"{self.by_args!r}; write by_args=[{self.by_args!r}]"
            )
        if self.by_args is True:
            raise ConfigurationError(
                "KeyLimit(by_args=True) would give every distinct call its own key, which "
                "limits nothing: name the arguments that make the key, e.g. by_args=['user_id']"
            )
        if self.concurrency is not None and self.concurrency < 1:
            raise ConfigurationError(
                "KeyLimit(concurrency=...) must be at least 1 (or None for no limit)"
            )
        if self.fifo and self.concurrency not in (None, 1):
            raise ConfigurationError(
                "KeyLimit(fifo=True) runs one job of a key at a time: leave concurrency unset"
            )
        if self.rate is not None:
            count, period = self.rate
            if not isinstance(count, int) or count < 1:
                raise ConfigurationError("KeyLimit(rate=(n, period)) needs n of at least 1")
            if to_seconds(period, name="KeyLimit rate period") <= 0:
                raise ConfigurationError("KeyLimit(rate=(n, period)) needs a positive period")
        if self.concurrency is None and not self.fifo and self.rate is None:
            raise ConfigurationError(
                "a KeyLimit limits nothing without concurrency=, fifo=True or rate=(n, period)"
            )

    def rule(self, task: str, args: dict[str, Any], explicit: Any = None) -> FlowRule:
        """The stored rule of a job of ``task`` with stored ``args``; ``explicit`` is the
        ``limit_key=`` given at enqueue."""
        if explicit is not None:
            value: Any = explicit_key(explicit, option="limit_key")
        else:
            value = chosen_args(self.by_args, args)
        rate, period = (None, None)
        if self.rate is not None:
            rate, period = self.rate[0], to_seconds(self.rate[1], name="KeyLimit rate period")
        return FlowRule(
            key=make_key(self.name or task, value),
            limit=1 if self.fifo else self.concurrency,
            fifo=self.fifo,
            rate=rate,
            period=period,
        )


@dataclass(frozen=True, slots=True)
class Debounce:
    """Collapse a burst of enqueues into one job that runs ``window`` after the last one.

    An enqueue whose key a pending (not yet claimed) job holds gives that job the new
    arguments and moves its run time to ``window`` from now, on the database's clock, and
    returns its id. Once a worker claimed the job, the next enqueue makes a new job.

    Args:
        window: quiet time before the job runs (seconds or a ``timedelta``).
        by_args: the arguments whose values make the key (default ``False``: one pending
            job for the whole task); ``enqueue(debounce_key="...")`` gives it directly.

    Example:
        >>> @jobs.task(debounce=Debounce(window=5, by_args=["doc_id"]))  # doctest: +SKIP
        ... def reindex(doc_id: int, text: str) -> None: ...
    """

    window: Duration
    by_args: bool | Sequence[str] = False

    def __post_init__(self) -> None:
        if isinstance(self.by_args, str):
            raise ConfigurationError(
                f"Debounce(by_args=...) takes a list of parameter names, got the string "
                f"{self.by_args!r}; write by_args=[{self.by_args!r}]"
            )
        if self.by_args is True:
            raise ConfigurationError(
                "Debounce(by_args=True) keys on every argument, so no enqueue would replace "
                "another's arguments: name the arguments that make the key, e.g. ['doc_id']"
            )
        debounce_seconds(self.window)

    def key(self, task: str, args: dict[str, Any], explicit: Any = None) -> str:
        value = (
            explicit_key(explicit, option="debounce_key")
            if explicit is not None
            else chosen_args(self.by_args, args)
        )
        return DEBOUNCE_PREFIX + make_key(task, value)


def debounce_seconds(window: Duration) -> float:
    seconds = to_seconds(window, name="debounce window")
    if seconds <= 0:
        raise ConfigurationError(
            f"a debounce window must be positive, got {window!r}: pass seconds or a timedelta"
        )
    return seconds


def chosen_args(by_args: bool | Sequence[str], args: dict[str, Any]) -> dict[str, Any]:
    if isinstance(by_args, bool):
        return {}
    return {name: args.get(name) for name in by_args}


def explicit_key(value: Any, *, option: str) -> str:
    """A key given at enqueue: a string (any length; long ones are hashed)."""
    if not isinstance(value, str):
        raise TypeError(
            f"{option} must be a string, got {type(value).__name__} {value!r:.80}: "
            f"pass {option}=str(value)"
        )
    return value


def make_key(namespace: str, value: Any) -> str:
    """``namespace:`` and ``value`` as ASCII JSON (NUL, surrogates escaped), hashed when long."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"a key's arguments must be JSON values: {exc}") from exc
    return key_digest(f"{namespace}:{text}")
