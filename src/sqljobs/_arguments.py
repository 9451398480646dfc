"""Checks job arguments at enqueue time: they must bind to the task and be plain JSON.

Sessions, connections, engines and ORM instances are refused with an error that says to
pass the primary key instead; nothing is ever pickled.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import re
import types
import typing
from collections.abc import Callable, Collection, Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import InstanceState, Session, scoped_session

from ._conversions import converter_for
from ._secrets import Secret, SecretParameter, is_sealed, secret_parameter
from .exceptions import ArgumentsDoNotFit, InvalidArguments, SerializationError

if TYPE_CHECKING:
    from ._keyring import Keyring
    from ._secret_arguments import SecretArguments

_SESSION_LIKE: tuple[type, ...] = (Session, scoped_session, Connection, Engine)
try:  # the asyncio extension imports without greenlet installed; be defensive anyway
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

    _SESSION_LIKE += (AsyncSession, AsyncConnection, AsyncEngine)
except ImportError:  # pragma: no cover
    pass

#: Lists and objects a stored value may nest. MariaDB's JSON check refuses a document 32
#: levels deep, and an argument value sits inside the arguments object: 30 fits everywhere.
MAX_JSON_DEPTH = 30
#: Ints this short always have a decimal form (Python refuses ints of more than
#: ``sys.get_int_max_str_digits()`` digits, which is at least 640); longer ones are tried.
#: Parameters a graph node receives from its dependencies (see ArgumentSpec.awaiting).
_AWAITING: ContextVar[frozenset[str]] = ContextVar("sqljobs_awaiting", default=frozenset())
_SAFE_INT_BITS = 2_000
_SURROGATE = re.compile("[\ud800-\udfff]")
_PLAIN_SCALARS = frozenset({int, bool, type(None)})


def _text_problem(text: str) -> str | None:
    """Why no database stores ``text`` as is, or None."""
    if "\x00" in text:
        return (
            "contains a NUL character (\\x00), which PostgreSQL cannot store in JSON text; "
            "remove it, or pass binary data base64-encoded"
        )
    if not text.isascii() and (found := _SURROGATE.search(text)) is not None:
        return (
            f"contains a lone surrogate ({found.group()!r}), which is not text (UTF-8 cannot "
            "encode it, MariaDB refuses it); decode bytes with errors='replace', or pass "
            "binary data base64-encoded"
        )
    return None


def _int_problem(number: int) -> str | None:
    if number.bit_length() <= _SAFE_INT_BITS:
        return None
    try:
        str(number)
    except ValueError:
        return (
            "an int too long for Python to write as JSON text (see "
            "sys.get_int_max_str_digits()); pass it as a string, str(value)"
        )
    return None


def _is_verbatim(value: Any) -> bool:
    """A plain scalar (or finite float, short int, clean str) that every database stores and
    JSON gives back unchanged: the common case, checked before anything costlier."""
    kind = type(value)
    if kind is str:
        return "\x00" not in value and (value.isascii() or _SURROGATE.search(value) is None)
    if kind is int:
        return bool(value.bit_length() <= _SAFE_INT_BITS)
    return kind in _PLAIN_SCALARS or (kind is float and math.isfinite(value))


def storable_text(text: str) -> str:
    """``text`` with what :func:`check_json` refuses in strings escaped (for error records,
    which must be stored whatever an exception says)."""
    if _text_problem(text) is None:
        return text
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def check_json(value: Any, path: str, *, depth: int = 0) -> None:
    """Raise :class:`SerializationError` naming ``path`` (e.g. ``args['a'][3]``) of the first
    part of ``value`` that is not plain JSON every database stores and gives back unchanged.

    The rules, for arguments, results and progress messages alike: str, int, finite float,
    bool, None, and lists, tuples and str-keyed mappings of them, nested at most
    :data:`MAX_JSON_DEPTH` deep; no NUL character or lone surrogate in any string or key; no
    int too long to write as text. ``depth`` is how many lists and objects enclose ``value``.
    Recursion stops at the depth limit, so no value is deep enough for a RecursionError.
    """
    if _is_verbatim(value):
        return
    if isinstance(value, _SESSION_LIKE):
        name = type(value).__name__
        raise SerializationError(
            f"{path} is a {name}: a job never shares the caller's {name}. "
            "Pass the primary key of the row instead; the task receives its own session "
            "(declare a `session` parameter) and loads the row with session.get(Model, pk)."
        )
    state = sa_inspect(value, raiseerr=False)
    if isinstance(state, InstanceState):
        raise SerializationError(_orm_instance_message(path, state))
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, str):
        if (problem := _text_problem(value)) is not None:
            raise SerializationError(f"{path} {problem}")
        return
    if isinstance(value, int):
        if (problem := _int_problem(value)) is not None:
            raise SerializationError(f"{path} is {problem}")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SerializationError(
                f"{path} is {value!r}, which JSON cannot hold; pass None or a string instead"
            )
        return
    if isinstance(value, (list, tuple, Mapping)) and depth >= MAX_JSON_DEPTH:
        raise SerializationError(
            f"{path} nests lists and objects more than {MAX_JSON_DEPTH} levels deep (or "
            f"contains itself), which not every database stores (MariaDB refuses 32); "
            "flatten it, or pass it as a string (json.dumps) and decode it in the task"
        )
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            if not _is_verbatim(item):
                check_json(item, f"{path}[{index}]", depth=depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if type(key) is not str or not _is_verbatim(key):
                _check_key(key, path)
            if not _is_verbatim(item):
                check_json(item, f"{path}[{_short(key)}]", depth=depth + 1)
        return
    if isinstance(value, Secret):
        raise SerializationError(
            f"{path} is a Secret, which is stored only for a parameter annotated Secret[...]: "
            "annotate the task's parameter Secret[str] (or Secret[Any]) to store it encrypted"
        )
    raise SerializationError(
        f"{path} is a {type(value).__name__}, which is not JSON. Pass plain JSON "
        "(str, int, float, bool, None, lists and dicts of them), e.g. an ISO string for a "
        "datetime, str() for a UUID or Decimal, or the primary key for a database row."
    )


_TOP_LEVEL_ARGUMENT = re.compile(r"^args\['(\w+)'\]$")


def _orm_instance_message(path: str, state: InstanceState[Any]) -> str:
    """Refuse an ORM instance, showing the enqueue to write instead: for ``record_id=record``
    of a ``Record``, ``record_id=record.id`` and ``session.get(Record, record_id)``."""
    model = type(state.obj()).__name__ if state.obj() is not None else state.class_.__name__
    variable = re.sub(r"(?<!^)(?=[A-Z])", "_", model).lower()
    primary_key = state.mapper.primary_key
    key_attribute = (
        state.mapper.get_property_by_column(primary_key[0]).key if len(primary_key) == 1 else "id"
    )
    identity = state.identity
    known = f" ({model} with key {identity[0]!r})" if identity and len(identity) == 1 else ""
    argument = _TOP_LEVEL_ARGUMENT.match(path)
    if argument:
        name = argument.group(1)
        parameter = name if name.endswith("_id") else f"{name}_id"
        example = f"{parameter}={variable}.{key_attribute}"
        if parameter != name:
            example += f", with the task's parameter renamed to {parameter}"
        load = f"session.get({model}, {parameter})"
    else:
        example = f"{variable}.{key_attribute}"
        load = f"session.get({model}, ...)"
    return (
        f"{path} is an ORM instance of {model}{known}: ORM objects are bound to the caller's "
        f"session and would be detached in the job. Pass its primary key ({example}) and "
        f"load it in the task with {load}."
    )


def _check_key(key: Any, path: str) -> None:
    if not isinstance(key, str):
        raise SerializationError(
            f"{path} has a non-string key {_short(key)}; JSON object keys are strings, "
            "so convert it with str() (the task then receives the string)"
        )
    if (problem := _text_problem(key)) is not None:
        raise SerializationError(f"{path} has a key {_short(key)} that {problem}")


def _short(key: Any) -> str:
    """A key as it appears in a path: its repr, shortened (the repr escapes NUL and
    surrogates, so messages themselves are always storable)."""
    text = repr(key)
    return text if len(text) <= 60 else f"{text[:57]}..."


def to_json_value(value: Any, path: str = "value") -> Any:
    """Check ``value`` (see :func:`check_json`) and return it as JSON would give it back
    (tuples become lists)."""
    if _is_verbatim(value):
        return value
    check_json(value, path)
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

    def __init__(
        self,
        func: Any,
        injected: frozenset[str],
        *,
        keyring: Keyring | None = None,
        registered_name: str | None = None,
    ) -> None:
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
            injectable = _injectable_as(self.hints[name])
            if injectable is not None:
                raise InvalidArguments(
                    f"task {self.task_name}: parameter {name!r} is annotated "
                    f"{getattr(self.hints[name], '__name__', self.hints[name])}, which a job "
                    f"argument can never be; sqljobs passes it only to a parameter named "
                    f"{injectable!r}: rename {name!r} to {injectable!r}"
                )
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
        #: Parameters annotated ``Secret[...]``: sealed by ``keyring`` at enqueue, opened
        #: into a :class:`Secret` before the task runs.
        self.secrets: dict[str, SecretParameter] = {
            name: secret
            for name in self._known
            if (secret := secret_parameter(self.hints.get(name))) is not None
        }
        self.sealing: SecretArguments | None = None
        if self.secrets:
            from ._secret_arguments import SecretArguments  # it builds on this module

            # Sealed for the registered name, which jobs keep across deploys.
            self.sealing = SecretArguments(registered_name or self.task_name, self.secrets, keyring)
        self._checks = {
            name: check
            for name in self._known - self.secrets.keys()
            if (check := type_check(self.hints.get(name, inspect.Parameter.empty))) is not None
        }
        #: Parameters whose hints convert values to JSON and back (UUID, datetime, ...).
        self.converters = {
            name: converter
            for name in self._known - self.secrets.keys()
            if (converter := converter_for(self.hints.get(name))) is not None
        }

    @contextlib.contextmanager
    def awaiting(self, names: Collection[str]) -> Iterator[None]:
        """Inside: :meth:`validate` does not require ``names`` (a graph node's parameters that
        its dependencies' results fill in when they finish)."""
        for name in names:
            if name not in self._known and not self.accepts_any_keyword:
                raise ArgumentsDoNotFit(
                    f"{self.task_name}: has no parameter {name!r} to receive the results of "
                    f"its dependencies; it accepts {', '.join(map(repr, sorted(self._known)))}"
                )
        token = _AWAITING.set(frozenset(names))
        try:
            yield
        finally:
            _AWAITING.reset(token)

    def validate(self, kwargs: Mapping[str, Any], *, stored: bool = False) -> dict[str, Any]:
        """Return the JSON form of ``kwargs`` or raise :class:`InvalidArguments` (or
        :class:`SerializationError` for a value :func:`check_json` refuses, unless the values
        were ``stored`` already: a row some database holds runs as it is)."""
        for name in self.injected:
            if name in kwargs:
                raise InvalidArguments(
                    f"{self.task_name}: do not pass {name!r}; sqljobs gives the task its own "
                    f"{name} when it runs"
                )
        awaited = _AWAITING.get()
        for name in awaited & kwargs.keys():
            raise ArgumentsDoNotFit(
                f"{self.task_name}: argument {name!r} receives the results of the job's "
                "dependencies; do not pass it too"
            )
        if not self._required.issubset(kwargs.keys() | awaited):
            missing = [
                name for name in self.parameters if name in self._required - set(kwargs) - awaited
            ]
            raise ArgumentsDoNotFit(
                f"{self.task_name}: missing required argument(s) {', '.join(map(repr, missing))}"
            )
        if not self.accepts_any_keyword and not self._known.issuperset(kwargs):
            unknown = [name for name in kwargs if name not in self._known]
            raise ArgumentsDoNotFit(
                f"{self.task_name}: unexpected argument(s) {', '.join(map(repr, unknown))}; "
                f"it accepts {', '.join(map(repr, sorted(self._known))) or 'no arguments'}"
            )
        if self.converters and not stored:
            kwargs = self._converted(kwargs, "to_json")
        if self.sealing is not None and not stored:
            kwargs = self.sealing.seal(kwargs)
        verbatim = True
        for name, value in kwargs.items():
            if not stored and self.accepts_any_keyword and not _is_verbatim(name):
                _check_key(name, "args")
            if not _is_verbatim(value):
                if not stored:
                    if is_sealed(value) and name not in self.secrets:
                        raise SerializationError(
                            f"{self.task_name}: argument {name!r} is an object whose only key "
                            "is '$secret', the stored form of a secret, which the dashboard "
                            "would hide and a finished job would erase; annotate the parameter "
                            "Secret[...] for a secret, or give the object another shape"
                        )
                    check_json(value, f"args[{_short(name)}]")
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
        checked = self.validate(args, stored=True)
        if self.converters:
            checked = self._converted(checked, "from_json")
        return self.sealing.open(checked) if self.sealing is not None else checked

    def _converted(self, kwargs: Mapping[str, Any], direction: str) -> dict[str, Any]:
        converted = dict(kwargs)
        for name, converter in self.converters.items():
            if name not in converted:
                continue
            try:
                converted[name] = getattr(converter, direction)(converted[name])
            except (ValueError, TypeError) as exc:
                reason = " ".join(str(exc).split())[:300]
                raise InvalidArguments(
                    f"{self.task_name}: argument {name!r} should be {converter.name}, got "
                    f"{type(kwargs[name]).__name__} {_short(kwargs[name])}: {reason}"
                ) from None
        return converted


#: Classes sqljobs injects (by the parameter's name), by their defining module and name: a
#: subclass (SQLModel's Session, an app's own) counts too.
_INJECTED_CLASSES = {
    ("sqlalchemy.orm.session", "Session"): "session",
    ("sqlalchemy.ext.asyncio.session", "AsyncSession"): "session",
    ("sqljobs.context", "JobContext"): "ctx",
}


def _injectable_as(hint: Any) -> str | None:
    """``"session"`` or ``"ctx"`` when ``hint`` is a class sqljobs injects, else None."""
    if not isinstance(hint, type):
        return None
    for klass in hint.__mro__:
        found = _INJECTED_CLASSES.get((klass.__module__, klass.__name__))
        if found is not None:
            return found
    return None
