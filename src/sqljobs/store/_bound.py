"""Running the store's statements in a connection the caller holds - a test's outer
transaction, rolled back after the test - instead of in the store's own short transactions.

Within :func:`bound_to`, every statement of :class:`~sqljobs.store.JobStore` runs on the
binding's connection, each unit of work in a savepoint of its own (so a failed statement
leaves the caller's transaction usable), and job sessions join the same connection. What the
jobs write is then visible to the test and rolled back with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import UnboundExecutionError
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Binding:
    """The caller's connection, and its ``AsyncConnection`` when the caller is async (async
    tasks then open their ``AsyncSession`` on it; statements use ``connection`` from within
    its greenlet)."""

    connection: Connection
    async_connection: Any = None


_bound: ContextVar[Binding | None] = ContextVar("sqljobs_bound_connection", default=None)


def current_binding() -> Binding | None:
    """The binding this context runs the store's statements in, if any."""
    return _bound.get()


@contextmanager
def bound_to(binding: Binding | None) -> Iterator[None]:
    """Within the block (this context: thread or asyncio task), run the store's statements
    and job sessions in ``binding`` (None: leave things as they are)."""
    if binding is None:
        yield
        return
    token = _bound.set(binding)
    try:
        yield
    finally:
        _bound.reset(token)


def external_binding(target: Session | Connection) -> Binding | None:
    """The binding of a Session bound to a Connection (joining an outer transaction, as the
    rollback-per-test pattern does), or of that Connection itself; None for a session bound
    to an Engine, whose commit is real."""
    if isinstance(target, Connection):
        return Binding(target)
    try:
        bind = target.get_bind()
    except UnboundExecutionError:
        return None
    return Binding(bind) if isinstance(bind, Connection) else None


def engine_of(target: Session | Connection | Engine) -> Engine | None:
    """The engine ``target`` runs on (None for a session with several binds)."""
    if isinstance(target, Engine):
        return target
    if isinstance(target, Connection):
        return target.engine
    try:
        bind = target.get_bind()
    except UnboundExecutionError:
        return None
    return bind.engine if isinstance(bind, Connection) else bind
