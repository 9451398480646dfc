"""The job store: the only code in sqljobs that issues SQL.

:class:`JobStore` runs every statement of the job's life (enqueue, claim, complete, fail,
heartbeat, rescue, prune) and of inspection (get, list, counts), in short transactions of its
own or in the caller's. Statements reused in several places are built in ``_statements``;
dialect differences (SKIP LOCKED, RETURNING, NOTIFY, JSON checks) sit behind the capability
flags of ``_dialects``, so the rest of the package never asks which database it talks to.
"""

from __future__ import annotations

from ..jobs import NewJob
from ._base import MAX_ERRORS_KEPT, NOTIFY_CHANNEL, JobFilters, row_to_job
from ._bound import Binding, bound_to, current_binding, engine_of, external_binding
from ._dialects import (
    DialectSupport,
    begin_write,
    check_worker_engine,
    pool_capacity,
    set_sqlite_busy_timeout,
    support_for,
)
from ._forking import dispose_pool_after_fork
from ._jobstore import JobStore
from ._sessions import SessionConnection

__all__ = [
    "MAX_ERRORS_KEPT",
    "NOTIFY_CHANNEL",
    "Binding",
    "DialectSupport",
    "JobFilters",
    "JobStore",
    "NewJob",
    "SessionConnection",
    "begin_write",
    "bound_to",
    "check_worker_engine",
    "current_binding",
    "dispose_pool_after_fork",
    "engine_of",
    "external_binding",
    "pool_capacity",
    "row_to_job",
    "set_sqlite_busy_timeout",
    "support_for",
]
