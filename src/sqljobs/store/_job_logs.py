"""Per-job logs' statements: store an attempt's lines, read a job's, delete them with their
job. Part of the job store (docs/logs.md)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.engine import Connection

from ..job_logs import JobLogLine
from ..jobs import Job
from ..schema import job_logs_table
from ._base import StoreBase, _jobs

_logs = job_logs_table


class LogStore(StoreBase):
    """Reads and writes ``sqljobs_job_logs``."""

    job_logs_table = _logs

    def save_logs(self, job: Job, lines: Sequence[JobLogLine]) -> None:
        """Store the lines of ``job``'s current attempt, in a transaction of their own (a
        rolled-back attempt keeps them). Nothing to store: no statement."""
        if not lines:
            return
        rows = [
            {
                "job_id": job.id,
                "job_created_at": job.created_at,
                "attempt": line.attempt,
                "position": position,
                "at": line.at,
                "level": line.level,
                "logger": line.logger,
                "message": line.message,
            }
            for position, line in enumerate(lines)
        ]

        def work(conn: Connection) -> None:
            conn.execute(_logs.insert(), rows)

        self.run(work, what="save job logs", repeatable=False)

    def logs_of(self, job_id: int) -> list[JobLogLine]:
        """The log lines of job ``job_id`` (none if it has none or does not exist), by
        attempt and order."""

        def work(conn: Connection) -> list[JobLogLine]:
            query = (
                select(_logs)
                .join(
                    _jobs,
                    (_jobs.c.id == _logs.c.job_id) & (_jobs.c.created_at == _logs.c.job_created_at),
                )
                .where(_logs.c.job_id == job_id)
                .order_by(_logs.c.attempt, _logs.c.position, _logs.c.id)
            )
            return [
                JobLogLine(
                    attempt=int(row.attempt),
                    at=row.at,
                    level=row.level,
                    logger=row.logger,
                    message=row.message,
                )
                for row in conn.execute(query)
            ]

        return self.run(work, what="list job logs", read_only=True)
