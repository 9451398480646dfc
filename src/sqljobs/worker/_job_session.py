"""The job's session belongs to sqljobs while its task runs.

sqljobs begins the job's transaction before the task and commits it with the job's
completion. A task that commits it (``session.commit()``) has made its writes so far durable
without the completion, so they cannot be rolled back and a retry would repeat them; a task
that begins it (``session.begin()``) finds it already begun. Both fail the attempt with
:class:`~sqljobs.exceptions.JobSessionMisused`, on every database. Savepoints
(``session.begin_nested()``) and ``session.flush()`` are fine.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import Session

from ..exceptions import JobSessionMisused


class SessionGuard:
    """Notices commits of a job's session made by its task (not savepoint releases)."""

    def __init__(self, session: Session, task_name: str) -> None:
        self.task_name = task_name
        self.committed = False
        self._watching = True
        event.listen(session, "after_commit", self._on_commit)

    def _on_commit(self, session: Session) -> None:
        # SQLAlchemy reports a released savepoint as a commit too.
        if self._watching and not session.in_nested_transaction():
            self.committed = True

    def stop(self) -> None:
        """The task returned: the commits that follow are sqljobs' own."""
        self._watching = False

    def check(self) -> None:
        if self.committed:
            raise self._committed_error()

    def explain(self, exc: BaseException) -> BaseException:
        """What the attempt failed of: the misuse of the session if there was one."""
        if self.committed:
            error = self._committed_error()
            error.__cause__ = exc
            return error
        if isinstance(exc, InvalidRequestError) and "already begun" in str(exc):
            error = JobSessionMisused(
                f"task {self.task_name} called session.begin() on the job's session, which "
                "sqljobs has begun already and commits with the job's completion: write "
                "through the session without begin()/commit() (use session.begin_nested() "
                "for a savepoint)"
            )
            error.__cause__ = exc
            return error
        return exc

    def _committed_error(self) -> JobSessionMisused:
        return JobSessionMisused(
            f"task {self.task_name} committed the job's session; sqljobs commits it with the "
            "job's completion, so the writes the task committed cannot be rolled back and a "
            "retry would repeat them. Remove session.commit() from the task (use "
            "session.flush(), or session.begin_nested() for a savepoint). The job is "
            "discarded; its writes after the commit were rolled back"
        )
