"""Checks job arguments at enqueue time: they must bind to the task and be plain JSON.

Sessions, connections, engines and ORM instances are refused with an error that says to
pass the primary key instead; nothing is ever pickled.
"""

from __future__ import annotations

import inspect
import json
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import InstanceState, Session, scoped_session

from .exceptions import InvalidArguments, SerializationError

_SESSION_LIKE: tuple[type, ...] = (Session, scoped_session, Connection, Engine)
try:  # the asyncio extension imports without greenlet installed; be defensive anyway
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

    _SESSION_LIKE += (AsyncSession, AsyncConnection, AsyncEngine)
except ImportError:  # pragma: no cover
    pass

_PLAIN_SCALARS = frozenset({str, int, bool, type(None)})


def check_json(value: Any, path: str) -> None:
    """Raise a specific error for anything that is not plain JSON."""
    if type(value) in _PLAIN_SCALARS:  # the common case, before the costlier checks
        return
    if isinstance(value, _SESSION_LIKE):
        kind = type(value).__name__
        raise SerializationError(
            f"argument {path} is a {kind}: a job never shares the caller's {kind}. "
            "Pass the primary key of the row instead; the task receives its own session "
            "(declare a `session` parameter) and loads the row with session.get(Model, pk)."
        )
    state = sa_inspect(value, raiseerr=False)
    if isinstance(state, InstanceState):
        model = type(value).__name__
        identity = state.identity
        hint = f" ({model} with key {identity[0]!r})" if identity and len(identity) == 1 else ""
        raise SerializationError(
            f"argument {path} is an ORM instance of {model}{hint}: ORM objects are bound to the "
            "caller's session and would be detached in the job. Pass its primary key "
            f"(e.g. {path.split('.')[-1].split('[')[0]}_id={model.lower()}.id) and load it in "
            f"the task with session.get({model}, ...)."
        )
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SerializationError(f"argument {path} is {value!r}, which JSON cannot hold")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_json(item, f"{path}[{index}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SerializationError(
                    f"argument {path} has a non-string key {key!r}; JSON object keys are strings"
                )
            check_json(item, f"{path}[{key!r}]")
        return
    raise SerializationError(
        f"argument {path} is a {type(value).__name__}, which is not JSON. Pass plain JSON "
        "(str, int, float, bool, None, lists and dicts of them), e.g. an ISO string for a "
        "datetime, str() for a UUID or Decimal, or the primary key for a database row."
    )


def to_json_value(value: Any) -> Any:
    """Check ``value`` and return it as JSON would give it back (tuples become lists)."""
    check_json(value, "value")
    return json.loads(json.dumps(value))


def _matches(value: Any, annotation: Any) -> bool:
    """A shallow type check of JSON values against simple annotations; unknown ones pass."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(annotation))
    if annotation is None or annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation in (str, bool):
        return isinstance(value, annotation)
    if annotation in (list, tuple) or origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if annotation is dict or origin is dict:
        return isinstance(value, Mapping)
    return True


class ArgumentSpec:
    """What a task accepts from the caller, derived once from its signature."""

    def __init__(self, func: Any, injected: frozenset[str]) -> None:
        signature = inspect.signature(func)
        try:
            hints = typing.get_type_hints(func)
        except Exception:  # unresolved forward references: fall back to no type checks
            hints = {}
        self.task_name = getattr(func, "__qualname__", repr(func))
        self.injected = injected
        self.parameters = {
            name: param for name, param in signature.parameters.items() if name not in injected
        }
        self.hints = {
            name: hints.get(name, param.annotation) for name, param in self.parameters.items()
        }
        for name, param in self.parameters.items():
            if param.kind in (param.POSITIONAL_ONLY, param.VAR_POSITIONAL):
                raise InvalidArguments(
                    f"task {self.task_name} has positional-only parameter {name!r}; job "
                    "arguments are passed by keyword, so make it a normal parameter"
                )
        self.accepts_any_keyword = any(p.kind is p.VAR_KEYWORD for p in self.parameters.values())

    def validate(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Return the JSON form of ``kwargs`` or raise :class:`InvalidArguments`."""
        for name in self.injected:
            if name in kwargs:
                raise InvalidArguments(
                    f"{self.task_name}: do not pass {name!r}; sqljobs gives the task its own "
                    f"{name} when it runs"
                )
        missing = [
            name
            for name, p in self.parameters.items()
            if p.kind is not p.VAR_KEYWORD and p.default is p.empty and name not in kwargs
        ]
        if missing:
            raise InvalidArguments(
                f"{self.task_name}: missing required argument(s) {', '.join(map(repr, missing))}"
            )
        known = {n for n, p in self.parameters.items() if p.kind is not p.VAR_KEYWORD}
        unknown = [name for name in kwargs if name not in known]
        if unknown and not self.accepts_any_keyword:
            raise InvalidArguments(
                f"{self.task_name}: unexpected argument(s) {', '.join(map(repr, unknown))}; "
                f"it accepts {', '.join(map(repr, sorted(known))) or 'no arguments'}"
            )
        for name, value in kwargs.items():
            check_json(value, repr(name))
            annotation = self.hints.get(name, inspect.Parameter.empty)
            if name in known and not _matches(value, annotation):
                raise InvalidArguments(
                    f"{self.task_name}: argument {name!r} should be "
                    f"{getattr(annotation, '__name__', annotation)}, got "
                    f"{type(value).__name__} {value!r}"
                )
        result: dict[str, Any] = json.loads(json.dumps(dict(kwargs)))
        return result

    def bind_stored(self, args: Any) -> dict[str, Any]:
        """Check arguments read back from a row (which may have been written by anyone)."""
        if not isinstance(args, dict):
            raise InvalidArguments(
                f"{self.task_name}: stored arguments must be a JSON object, got "
                f"{type(args).__name__}"
            )
        return self.validate(args)
