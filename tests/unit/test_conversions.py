"""Type hints convert rich arguments to JSON at enqueue and back before the task runs."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Optional

import pydantic
import pytest

from sqljobs import InvalidArguments
from sqljobs._arguments import ArgumentSpec


class Plan(enum.Enum):
    FREE = "free"
    PRO = "pro"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Address(pydantic.BaseModel):
    street: str
    zip_code: str


@dataclass
class Money:
    amount: Decimal
    currency: str


PARIS = dt.timezone(dt.timedelta(hours=1))


def signup(
    user_id: uuid.UUID,
    at: dt.datetime,
    birthday: dt.date,
    alarm: dt.time,
    balance: Decimal,
    plan: Plan,
    priority: Priority,
    address: Address,
    price: Money,
    referrer: uuid.UUID | None = None,
    coupon: Optional[Decimal] = None,  # noqa: UP045 (the old spelling must work too)
) -> None: ...


spec = ArgumentSpec(signup, frozenset())
RICH: dict[str, Any] = {
    "user_id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "at": dt.datetime(2026, 3, 29, 2, 30, 15, 123456, tzinfo=PARIS),
    "birthday": dt.date(1990, 2, 28),
    "alarm": dt.time(7, 30),
    "balance": Decimal("1234.5600"),
    "plan": Plan.PRO,
    "priority": Priority.HIGH,
    "address": Address(street="1 rue de Rivoli", zip_code="75001"),
    "price": Money(amount=Decimal("9.99"), currency="EUR"),
    "referrer": uuid.UUID(int=7),
    "coupon": None,
}
STORED = {
    "user_id": "12345678-1234-5678-1234-567812345678",
    "at": "2026-03-29T02:30:15.123456+01:00",
    "birthday": "1990-02-28",
    "alarm": "07:30:00",
    "balance": "1234.5600",
    "plan": "pro",
    "priority": 2,
    "address": {"street": "1 rue de Rivoli", "zip_code": "75001"},
    "price": {"amount": "9.99", "currency": "EUR"},
    "referrer": "00000000-0000-0000-0000-000000000007",
    "coupon": None,
}


def test_rich_arguments_are_stored_as_json_and_given_back_as_they_were() -> None:
    stored = spec.validate(RICH)
    assert stored == STORED
    given = spec.bind_stored(stored)
    assert given == RICH
    assert {name: type(value) for name, value in given.items()} == {
        name: type(value) for name, value in RICH.items()
    }
    assert given["at"].utcoffset() == dt.timedelta(hours=1)


def test_the_json_forms_are_accepted_at_enqueue_too() -> None:
    """``sqljobs enqueue --args`` and hand-written JSON pass the stored forms."""
    assert spec.validate(STORED) == STORED


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("user_id", "not-a-uuid", "should be UUID"),
        ("user_id", 42, "expected a UUID or its string"),
        ("at", "yesterday", "should be datetime"),
        ("birthday", dt.datetime(2026, 1, 1, 12, 0), "pass value.date()"),
        ("balance", 0.1, "has lost its exact value already"),
        ("balance", "NaN", "not a finite number"),
        ("balance", "ten", "is not a decimal number"),
        ("plan", "gold", "should be Plan"),
        ("address", {"street": "x"}, "zip_code"),
        ("price", {"amount": "1", "currency": 5}, "should be Money"),
    ],
)
def test_a_value_the_hint_cannot_take_is_refused_at_enqueue(
    name: str, value: Any, expected: str
) -> None:
    with pytest.raises(InvalidArguments, match=expected) as info:
        spec.validate({**RICH, name: value})
    assert f"argument {name!r}" in str(info.value)


def test_a_stored_value_that_no_longer_parses_is_invalid_arguments() -> None:
    with pytest.raises(InvalidArguments, match="argument 'plan' should be Plan"):
        spec.bind_stored({**STORED, "plan": "retired-plan"})


def test_hints_without_conversion_keep_plain_json_as_it_was() -> None:
    def plain(n: int, tags: list[str], meta: dict[str, Any]) -> None: ...

    assert ArgumentSpec(plain, frozenset()).converters == {}
