"""Inline mode: each due job an enqueue inserts runs in the thread that commits it, before
``commit()`` returns, whatever workers run meanwhile.

The enqueue inserts such jobs already claimed by this runner (running, not started, under
its own lease owner), so no worker anywhere can claim them first; once the caller's
transaction commits, the runner takes them and runs them like ``drain()`` would. If this
process dies in between, the lease expires and the jobs go back to the queue untouched.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import timedelta

from ..store import JobStore
from ._outcomes import Failed
from ._runner import JobRunner, running_job

log = logging.getLogger("sqljobs.worker")

#: How long a reserved job stays reserved for the transaction that enqueued it to commit.
INLINE_LEASE = timedelta(hours=1)

#: Exceptions of the jobs run inline within the outermost inline run in this context.
_errors: ContextVar[list[BaseException] | None] = ContextVar("sqljobs_inline_errors", default=None)


class InlineRunner:
    """Runs the jobs a queue in inline mode reserved, and hands their exceptions on."""

    def __init__(self, *, store: JobStore, runner: JobRunner) -> None:
        self._store = store
        self._runner = runner
        self.owner = f"inline:{os.getpid()}:{uuid.uuid4().hex[:12]}"

    @property
    def reservation(self) -> tuple[str, timedelta]:
        """What ``JobStore.enqueue(reserve_for=...)`` needs to reserve jobs for this runner."""
        return self.owner, INLINE_LEASE

    def run(self, ids: Sequence[int], *, raise_errors: bool) -> None:
        """Run the reserved jobs among ``ids`` here, one by one. With ``raise_errors``, the
        first task exception is raised once all have run (each job is stored failed or
        discarded first, as a worker would), except inside a running job: a child's error
        must not become its parent's, so it goes to an outer inline run if any, else only
        to the log."""
        outer = _errors.get()
        errors: list[BaseException] = [] if outer is None else outer
        token = _errors.set(errors) if outer is None else None
        try:
            for job in self._store.take_reserved(ids, owner=self.owner, lease=INLINE_LEASE):
                outcome = self._runner.run(job)
                if isinstance(outcome, Failed) and outcome.exception is not None:
                    errors.append(outcome.exception)
        finally:
            if token is not None:
                _errors.reset(token)
        if outer is None and errors and raise_errors and running_job() is None:
            first = errors[0]
            if len(errors) > 1 and hasattr(first, "add_note"):  # Python 3.11+
                first.add_note(f"({len(errors) - 1} more inline job(s) failed too; see the log)")
            raise first
