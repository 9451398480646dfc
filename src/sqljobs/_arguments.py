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
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import InstanceState, Session, scoped_session

from .exceptions import ArgumentsDoNotFit, InvalidArguments, SerializationError

_SESSION_LIKE: tuple[type, ...] = (Session, scoped_session, Connection, Engine)
try:  # the asyncio extension imports without greenlet installed; be defensive anyway
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

    _SESSION_LIKE += (AsyncSession, AsyncConnection, AsyncEngine)
except ImportError:  # pragma: no cover
    pass

_PLAIN_SCALARS = frozenset({str, int, bool, type(None)})


def _is_verbatim(value: Any) -> bool:
    """A plain scalar (or finite float) that JSON gives back unchanged: the common case,
    checked before anything costlier."""
    kind = type(value)
    return kind in _PLAIN_SCALARS or (kind is float and math.isfinite(value))


def check_json(value: Any, path: str) -> None:
    """Raise a specific error for anything that is not plain JSON."""
    if _is_verbatim(value):
        return
    if isinstance(value, _SESSION_LIKE):
        name = type(value).__name__
        raise SerializationError(
            f"argument {path} is a {name}: a job never shares the caller's {name}. "
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


TypeCheck = Callable[[Any], bool]


def _is_none(value: Any) -> bool:
    return value is None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def _is_mapping(value: Any) -> bool:
    return isinstance(value, Mapping)


_SIMPLE_CHECKS: dict[Any, TypeCheck] = {
    None: _is_none,
    type(None): _is_none,
    float: _is_number,
    int: _is_int,
    str: _is_str,
    bool: _is_bool,
    list: _is_sequence,
    tuple: _is_sequence,
    dict: _is_mapping,
}


def type_check(annotation: Any) -> TypeCheck | None:
    """A shallow check of JSON values against a simple annotation, built once per parameter;
    None where anything goes (no annotation, ``Any``, or one too rich to check shallowly)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        checks = [type_check(arg) for arg in typing.get_args(annotation)]
        if any(check is None for check in checks):
            return None
        members = typing.cast(list[TypeCheck], checks)
        return lambda value: any(check(value) for check in members)
    if annotation in _SIMPLE_CHECKS:
        return _SIMPLE_CHECKS[annotation]
    if origin in (list, tuple):
        return _is_sequence
    if origin is dict:
        return _is_mapping
    return None


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
        self._known = frozenset(
            name for name, p in self.parameters.items() if p.kind is not p.VAR_KEYWORD
        )
        self._required = frozenset(
            name for name in self._known if self.parameters[name].default is inspect.Parameter.empty
        )
        self._checks = {
            name: check
            for name in self._known
            if (check := type_check(self.hints.get(name, inspect.Parameter.empty))) is not None
        }

    def validate(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Return the JSON form of ``kwargs`` or raise :class:`InvalidArguments`."""
        for name in self.injected:
            if name in kwargs:
                raise InvalidArguments(
                    f"{self.task_name}: do not pass {name!r}; sqljobs gives the task its own "
                    f"{name} when it runs"
                )
        if not self._required.issubset(kwargs):
            missing = [name for name in self.parameters if name in self._required - set(kwargs)]
            raise ArgumentsDoNotFit(
                f"{self.task_name}: missing required argument(s) {', '.join(map(repr, missing))}"
            )
        if not self.accepts_any_keyword and not self._known.issuperset(kwargs):
            unknown = [name for name in kwargs if name not in self._known]
            raise ArgumentsDoNotFit(
                f"{self.task_name}: unexpected argument(s) {', '.join(map(repr, unknown))}; "
                f"it accepts {', '.join(map(repr, sorted(self._known))) or 'no arguments'}"
            )
        verbatim = True
        for name, value in kwargs.items():
            if not _is_verbatim(value):
                check_json(value, repr(name))
                verbatim = False
            check = self._checks.get(name)
            if check is not None and not check(value):
                annotation = self.hints[name]
                raise InvalidArguments(
                    f"{self.task_name}: argument {name!r} should be "
                    f"{getattr(annotation, '__name__', annotation)}, got "
                    f"{type(value).__name__} {value!r}"
                )
        if verbatim:  # scalars only: JSON would give back the same values
            return dict(kwargs)
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
