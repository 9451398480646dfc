"""Private helpers: clocks, durations and import-path resolution."""

from __future__ import annotations

import importlib
from datetime import datetime, timedelta, timezone
from typing import Any

Duration = timedelta | float | int


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


def to_timedelta(value: Duration, *, name: str = "duration") -> timedelta:
    """Accept ``timedelta`` or seconds; refuse negatives and other types."""
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        result = timedelta(seconds=value)
    else:
        raise TypeError(
            f"{name} must be a timedelta or a number of seconds, not {type(value).__name__}"
        )
    if result < timedelta(0):
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return result


def to_seconds(value: Duration, *, name: str = "duration") -> float:
    return to_timedelta(value, name=name).total_seconds()


def as_utc(value: datetime, *, name: str = "datetime") -> datetime:
    """Normalise an aware datetime to UTC; refuse naive ones (their zone is a guess)."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(
            f"{name} must be timezone-aware (e.g. datetime.now(timezone.utc)), got naive {value!r}"
        )
    return value.astimezone(timezone.utc)


def import_object(path: str) -> Any:
    """Resolve ``"package.module:attribute"`` (or ``package.module.attribute``)."""
    module_name, sep, attribute = path.partition(":")
    if not sep:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(f"expected 'module:attribute', got {path!r}")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj
