"""Jobs enqueued in a caller's Session are reported (events, wake-ups) once it commits.

Each enqueue is remembered with the innermost transaction it ran in. A savepoint
(``session.begin_nested()``) that rolls back forgets only the jobs enqueued inside it (or in
savepoints within it); a released savepoint keeps its jobs pending until the outermost
transaction commits. SQLAlchemy fires ``after_commit`` for released savepoints too, so only
the outermost commit reports.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from .jobs import NewJob

#: session.info key: jobs enqueued in the session's transaction, reported when it commits.
_PENDING = "sqljobs_pending"

Committed = Callable[[list[int], list[NewJob]], None]
_Entry = tuple[SessionTransaction | None, list[int], list[NewJob], Committed]


def report_on_commit(
    session: Session, ids: list[int], rows: list[NewJob], committed: Committed
) -> None:
    """Call ``committed(ids, rows)`` once ``session``'s outermost transaction commits; never
    if it, or a savepoint the jobs were enqueued in, rolls back."""
    pending: list[_Entry] | None = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = []
        event.listen(session, "after_commit", _report_pending)
        event.listen(session, "after_soft_rollback", _forget_rolled_back)
        event.listen(session, "after_transaction_end", _forget_on_end)
    where = session.get_nested_transaction() or session.get_transaction()
    pending.append((where, ids, rows, committed))


def _report_pending(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint was released, not the transaction
        return
    done: list[_Entry] = session.info.get(_PENDING) or []
    session.info[_PENDING] = []
    for _where, ids, rows, committed in done:
        committed(ids, rows)


def _forget_rolled_back(session: Session, rolled_back: SessionTransaction) -> None:
    pending: list[_Entry] = session.info.get(_PENDING) or []
    session.info[_PENDING] = [e for e in pending if not _within(e[0], rolled_back)]


def _forget_on_end(session: Session, transaction: SessionTransaction) -> None:
    # The outermost transaction ended without a commit that reported (closed, or its
    # connection lost): nothing enqueued in it can commit any more.
    if transaction.parent is None:
        pending: list[_Entry] = session.info.get(_PENDING) or []
        session.info[_PENDING] = [e for e in pending if not _within(e[0], transaction)]


def _within(where: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    if where is None:  # no transaction was known: it can only be the outermost one
        return ancestor.parent is None
    step: SessionTransaction | None = where
    while step is not None:
        if step is ancestor:
            return True
        step = step.parent
    return False
