"""Which event loop an async task runs on, and which async engine its session may use there.

An async engine's pooled connections belong to the loop that opened them: a connection used
on another loop fails ("attached to a different loop"), and far from the cause when it went
back to the app's pool. So:

- Where sqljobs runs a job from inside an SQLAlchemy greenlet on a running loop (inline jobs
  committed by an ``AsyncSession``, ``await jobs.adrain()``), the async task runs right
  there, on the caller's loop, with the app's own engine (:func:`can_await_here`).
- On a loop sqljobs started itself (:func:`engine_for_private_loop`), async tasks get their sessions
  from a private copy of the app's async engine - same URL, options and pool settings, its
  own pool - so no connection opened there ever enters the app's pool. The copies are
  disposed on that loop when the queue closes.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import weakref
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.pool import NullPool

from ..exceptions import ConfigurationError
from ..store import current_binding

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

T = TypeVar("T")


class _LoopState:
    """What sqljobs opened on one of its own loops: private engine copies, by original."""

    def __init__(self) -> None:
        self.copies: dict[int, tuple[AsyncEngine, AsyncEngine]] = {}


_lock = threading.Lock()
#: Loops sqljobs created (its async runner threads), with what it opened on them.
_private_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
    weakref.WeakKeyDictionary()
)


def register_private_loop(loop: asyncio.AbstractEventLoop) -> None:
    with _lock:
        _private_loops[loop] = _LoopState()


def on_private_loop() -> bool:
    """Whether the running loop is one sqljobs started (not the application's)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    with _lock:
        return loop in _private_loops


def can_await_here() -> bool:
    """Whether this sync code runs in an SQLAlchemy greenlet (``AsyncSession.commit()``,
    ``run_sync``, ``greenlet_spawn``) on a running loop, so it can await a coroutine there."""
    try:
        from sqlalchemy.util.concurrency import in_greenlet
    except ImportError:  # pragma: no cover - SQLAlchemy without its asyncio support
        return False
    try:
        return bool(in_greenlet())
    except Exception:  # greenlet not installed
        return False


def await_here(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on the loop this greenlet belongs to (see :func:`can_await_here`)."""
    from sqlalchemy.util import await_only

    return await_only(coroutine)


def engine_for_private_loop(engine: AsyncEngine) -> AsyncEngine:
    """On one of sqljobs' own loops: ``engine`` itself when it pools nothing, else this loop's
    private copy of it (made at first use, disposed by :func:`close_private_loop`)."""
    if isinstance(engine.sync_engine.pool, NullPool):
        return engine
    loop = asyncio.get_running_loop()
    with _lock:
        state = _private_loops.get(loop)
        if state is None:
            return engine  # not one of ours
        found = state.copies.get(id(engine))
        if found is None or found[0] is not engine:
            found = state.copies[id(engine)] = (engine, _private_copy(engine))
        return found[1]


async def close_private_loop() -> None:
    """Dispose the engine copies made on the running loop (sqljobs' own, about to stop)."""
    loop = asyncio.get_running_loop()
    with _lock:
        state = _private_loops.pop(loop, None)
    for _original, private in state.copies.values() if state else ():
        await private.dispose()


def _private_copy(engine: AsyncEngine) -> AsyncEngine:
    """Same dialect, URL, options and event listeners; a new pool of the same kind and size
    (``Pool.recreate``, as ``Engine.dispose()`` does)."""
    from sqlalchemy.ext.asyncio import AsyncEngine

    sync_engine = copy.copy(engine.sync_engine)
    sync_engine.pool = engine.sync_engine.pool.recreate()
    return AsyncEngine(sync_engine)


def attempt_session(factory: Any, task_name: str) -> AsyncSession:
    """An async attempt's AsyncSession from ``factory`` (the queue's async_sessionmaker): on
    the caller's connection when the store is bound to one (a test's transaction), from this
    loop's private engine copy on sqljobs' own loop, else from the factory as it is.

    Raises:
        ConfigurationError: when bound to a sync connection only (no AsyncConnection to join).
    """
    if factory is None:  # checked when the task is registered
        raise AssertionError("async task with a session but no async_session_factory")
    binding = current_binding()
    if binding is not None:
        if binding.async_connection is None:
            raise ConfigurationError(
                f"async task {task_name} cannot join the sync connection sqljobs was given "
                "(an AsyncSession needs an AsyncConnection): give the test's AsyncSession "
                "or AsyncConnection instead, e.g. await jobs.adrain(using=session)"
            )
        mode = "create_savepoint"
        session: AsyncSession = factory(bind=binding.async_connection, join_transaction_mode=mode)
        return session
    bind = factory.kw.get("bind")
    if bind is not None and hasattr(bind, "sync_engine") and on_private_loop():
        session = factory(bind=engine_for_private_loop(bind))
    else:
        session = factory()
    return session
