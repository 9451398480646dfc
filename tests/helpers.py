"""Test helpers: wait for a condition without bare sleeps, count effects."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Counter

T = TypeVar("T")


def eventually(check: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.02) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        time.sleep(interval)


def add_counters(factory: sessionmaker[Session], count: int = 1) -> None:
    with factory() as session:
        session.add_all(Counter(id=i, n=0) for i in range(1, count + 1))
        session.commit()


def increment(session: Session, counter_id: int = 1) -> None:
    """An atomic increment: safe under concurrency on every database."""
    session.execute(update(Counter).where(Counter.id == counter_id).values(n=Counter.n + 1))


def counter_total(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return sum(session.scalars(select(Counter.n)))
