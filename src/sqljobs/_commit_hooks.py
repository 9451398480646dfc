"""Jobs enqueued in a caller's Session are reported (events, wake-ups) once it commits."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

from .jobs import NewJob

#: session.info key: jobs enqueued in the session's transaction, reported when it commits.
_PENDING = "sqljobs_pending"

Committed = Callable[[list[int], list[NewJob]], None]


def report_on_commit(
    session: Session, ids: list[int], rows: list[NewJob], committed: Committed
) -> None:
    """Call ``committed(ids, rows)`` once ``session``'s transaction commits; never if it
    rolls back."""
    pending: list[tuple[list[int], list[NewJob], Committed]] | None = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = []
        event.listen(session, "after_commit", _report_pending)
        event.listen(session, "after_rollback", _forget_pending)
    pending.append((ids, rows, committed))


def _report_pending(session: Session) -> None:
    done = session.info.get(_PENDING) or []
    session.info[_PENDING] = []
    for ids, rows, committed in done:
        committed(ids, rows)


def _forget_pending(session: Session) -> None:
    session.info[_PENDING] = []
