"""A forked child must not reuse its parent's pooled connections: both processes would then
talk on one socket (SSL streams get corrupted, answers go to the wrong process)."""

from __future__ import annotations

import os
import weakref

from sqlalchemy.engine import Engine

_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def dispose_pool_after_fork(engine: Engine) -> None:
    """In a child forked after this call, ``engine`` forgets the parent's connections
    (``engine.dispose(close=False)``) and opens its own."""
    _ENGINES.add(engine)


def _after_fork_in_child() -> None:
    for engine in list(_ENGINES):
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
