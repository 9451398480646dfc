"""Jobs enqueued in a caller's Session are reported (events, wake-ups, inline runs) once it
commits, and reported lost if it never does.

Each enqueue is remembered with the innermost transaction it ran in. A savepoint
(``session.begin_nested()``) that rolls back forgets only the jobs enqueued inside it (or in
savepoints within it); a released savepoint keeps its jobs pending until the outermost
transaction commits. SQLAlchemy fires ``after_commit`` for released savepoints too, so only
the outermost commit reports.

Jobs whose transaction ends without committing them - rolled back, closed, or the session
garbage-collected - never existed for anyone else; their enqueue returned ids all the same.
That is logged as a WARNING naming them, since it is nearly always a missing ``commit()``
(except in a job's own session, whose rollback is the failed attempt's, logged already).

An exception a report raises (an inline job's task error) is raised from ``commit()`` once
the transaction is closed, so the session stays usable.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from .context import JOB_SESSION_INFO
from .jobs import NewJob

log = logging.getLogger("sqljobs")

#: session.info key: the jobs enqueued in the session's transaction, until it ends.
_PENDING = "sqljobs_pending"
#: session.info key: what a report raised, re-raised once the committed transaction closed.
_RAISED = "sqljobs_raised"

Committed = Callable[[list[int], list[NewJob]], None]
_Entry = tuple[SessionTransaction | None, list[int], list[NewJob], Committed]


class _Pending:
    """The entries, and the names of their jobs apart: a garbage-collected session's
    finalizer may hold only the names (entries refer to transactions, which refer to it)."""

    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        self.names: dict[int, str] = {}

    def add(self, entry: _Entry) -> None:
        self.entries.append(entry)
        self.names.update(_names([entry]))

    def take(self, keep: Callable[[_Entry], bool] = lambda entry: False) -> list[_Entry]:
        """Remove and return the entries ``keep`` refuses."""
        taken = [entry for entry in self.entries if not keep(entry)]
        self.entries = [entry for entry in self.entries if keep(entry)]
        for _where, ids, _rows, _committed in taken:
            for job_id in ids:
                self.names.pop(job_id, None)
        return taken


def report_on_commit(
    session: Session, ids: list[int], rows: list[NewJob], committed: Committed
) -> None:
    """Call ``committed(ids, rows)`` once ``session``'s outermost transaction commits; never
    if it, or a savepoint the jobs were enqueued in, rolls back (then log the loss)."""
    pending: _Pending | None = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = _Pending()
        event.listen(session, "after_commit", _report_pending)
        event.listen(session, "after_soft_rollback", _forget_rolled_back)
        event.listen(session, "after_transaction_end", _forget_on_end)
        weakref.finalize(session, _collected, pending.names)
    where = session.get_nested_transaction() or session.get_transaction()
    pending.add((where, ids, rows, committed))


def _report_pending(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint was released, not the transaction
        return
    pending: _Pending | None = session.info.get(_PENDING)
    raised: BaseException | None = None
    for _where, ids, rows, committed in pending.take() if pending else []:
        try:
            committed(ids, rows)
        except Exception as exc:  # every report runs; the first error reaches commit()
            raised = raised or exc
    if raised is not None:
        session.info[_RAISED] = raised


def _forget_rolled_back(session: Session, rolled_back: SessionTransaction) -> None:
    _forget(session, rolled_back, "rolled back")


def _forget_on_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return
    # The outermost transaction ended without a commit that reported (closed, or its
    # connection lost): nothing enqueued in it can commit any more.
    _forget(session, transaction, "rolled back or closed without a commit")
    raised = session.info.pop(_RAISED, None)
    if raised is not None:
        raise raised


def _forget(session: Session, ended: SessionTransaction, how: str) -> None:
    pending: _Pending | None = session.info.get(_PENDING)
    if pending is None:
        return
    lost = pending.take(keep=lambda entry: not _within(entry[0], ended))
    names = _names(lost)
    if not names:
        return
    if session.info.get(JOB_SESSION_INFO):  # a failed attempt's rollback, logged already
        log.debug("jobs %s were dropped with their job's rolled back session", sorted(names))
        return
    _warn_dropped(names, f"the {'savepoint' if ended.nested else 'transaction'} was {how}")


def _names(entries: list[_Entry]) -> dict[int, str]:
    """Job id -> task name of the jobs ``entries`` enqueued."""
    return {
        job_id: row.task
        for _where, ids, rows, _committed in entries
        for job_id, row in zip(ids, rows, strict=True)
    }


def _collected(names: dict[int, str]) -> None:
    if names:
        _warn_dropped(names, "its session was garbage-collected without a commit")


def _warn_dropped(names: dict[int, str], why: str) -> None:
    log.warning(
        "%d enqueued job(s) dropped, never to run: %s; %s. A job is inserted in the "
        "caller's transaction and exists only once it commits: call session.commit() "
        "after enqueueing",
        len(names),
        ", ".join(f"{task} (id {job_id})" for job_id, task in names.items()),
        why,
    )


def _within(where: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    if where is None:  # no transaction was known: it can only be the outermost one
        return ancestor.parent is None
    step: SessionTransaction | None = where
    while step is not None:
        if step is ancestor:
            return True
        step = step.parent
    return False
