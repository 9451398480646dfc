"""Type hints that turn rich argument values into JSON at enqueue and back before the task
runs: ``uuid.UUID``, ``datetime``/``date``/``time`` (time zones kept), ``Decimal``, ``Enum``
subclasses, and pydantic models or dataclasses (with pydantic installed), each also inside
``X | None``.

A converter accepts the rich value or its JSON form (so the CLI's ``--args`` and stored rows
work) and raises ``ValueError`` or ``TypeError`` for anything else.

Example:
    >>> converter = converter_for(uuid.UUID)
    >>> converter.to_json(uuid.UUID(int=1))
    '00000000-0000-0000-0000-000000000001'
    >>> converter.from_json('00000000-0000-0000-0000-000000000001')
    UUID('00000000-0000-0000-0000-000000000001')
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import types
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any


@dataclass(frozen=True, slots=True)
class Converter:
    """How one annotated parameter goes to JSON (``to_json``) and back (``from_json``)."""

    name: str
    to_json: Callable[[Any], Any]
    from_json: Callable[[Any], Any]


def converter_for(annotation: Any) -> Converter | None:
    """The converter for ``annotation``, or None when its values are plain JSON already."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        if optional and len(members) == 1 and (inner := converter_for(members[0])) is not None:
            return _or_none(inner)
        return None
    if not isinstance(annotation, type):
        return None
    if issubclass(annotation, enum.Enum):
        return _enum(annotation)
    simple = _SIMPLE.get(annotation)
    if simple is not None:
        return simple
    if dataclasses.is_dataclass(annotation) or _is_pydantic_model(annotation):
        return _pydantic(annotation)
    return None


def _or_none(inner: Converter) -> Converter:
    return Converter(
        name=f"{inner.name} | None",
        to_json=lambda value: None if value is None else inner.to_json(value),
        from_json=lambda value: None if value is None else inner.from_json(value),
    )


def _enum(cls: type[enum.Enum]) -> Converter:
    def to_json(value: Any) -> Any:
        return (value if isinstance(value, cls) else cls(value)).value

    return Converter(name=cls.__name__, to_json=to_json, from_json=cls)


def _uuid_to_json(value: Any) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        return str(uuid.UUID(value))
    raise TypeError(f"expected a UUID or its string, got {type(value).__name__}")


def _iso(kind: type[dt.date] | type[dt.time]) -> Converter:
    """ISO 8601 text; a ``datetime`` keeps its offset (naive stays naive). A ``date``
    parameter refuses a ``datetime``, which would lose its time silently."""

    def parse(value: Any) -> Any:
        if not isinstance(value, str):
            raise TypeError(f"expected a {kind.__name__} or its ISO string, got {value!r}")
        return kind.fromisoformat(value)

    def to_json(value: Any) -> str:
        parsed = value if isinstance(value, kind) else parse(value)
        if kind is dt.date and isinstance(parsed, dt.datetime):
            raise TypeError(f"expected a date, got the datetime {value!r}: pass value.date()")
        return str(parsed.isoformat())

    return Converter(name=kind.__name__, to_json=to_json, from_json=parse)


def _decimal_to_json(value: Any) -> str:
    if isinstance(value, float) or isinstance(value, bool):
        raise TypeError(
            f"expected a Decimal, an int or a numeric string, got the float {value!r}, which "
            "has lost its exact value already: pass Decimal(...) or a string"
        )
    try:
        number = value if isinstance(value, Decimal) else Decimal(value)
    except (InvalidOperation, TypeError) as exc:
        raise ValueError(f"{value!r} is not a decimal number") from exc
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return str(number)


def _decimal_from_json(value: Any) -> Decimal:
    return Decimal(_decimal_to_json(value))


_SIMPLE: dict[type, Converter] = {
    uuid.UUID: Converter("UUID", _uuid_to_json, lambda value: uuid.UUID(_uuid_to_json(value))),
    dt.datetime: _iso(dt.datetime),
    dt.date: _iso(dt.date),
    dt.time: _iso(dt.time),
    Decimal: Converter("Decimal", _decimal_to_json, _decimal_from_json),
}


def _is_pydantic_model(cls: type) -> bool:
    try:
        from pydantic import BaseModel
    except ImportError:
        return False
    return issubclass(cls, BaseModel)


def _pydantic(cls: type) -> Converter:
    try:
        from pydantic import TypeAdapter
    except ImportError:
        return Converter(cls.__name__, _needs_pydantic(cls), _needs_pydantic(cls))
    adapter: Any = TypeAdapter(cls)

    def to_json(value: Any) -> Any:
        return adapter.dump_python(adapter.validate_python(value), mode="json")

    return Converter(name=cls.__name__, to_json=to_json, from_json=adapter.validate_python)


def _needs_pydantic(cls: type) -> Callable[[Any], Any]:
    def refuse(value: Any) -> Any:
        raise TypeError(
            f"a dataclass argument ({cls.__name__}) is converted with pydantic: "
            "pip install pydantic, or pass a dict"
        )

    return refuse
