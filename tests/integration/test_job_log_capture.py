"""The capture handler of per-job logs (docs/logs.md) changes nothing else about logging: a
process without a logging configuration still prints warnings to stderr, and a
``ctx.logger`` record names the task's own line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = """
import logging
import sys

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

import sqljobs

jobs = sqljobs.JobQueue(sessionmaker(create_engine(f"sqlite:///{sys.argv[1]}")))
jobs.create_schema()


@jobs.task(name="warns")
def warns(ctx: sqljobs.JobContext) -> None:
    logging.getLogger("app").warning("plain warning from the task")
    ctx.logger.warning("ctx warning from the task")


job_id = warns.enqueue()
jobs.drain()
logging.getLogger("app").warning("after the job")
print([line.message for line in jobs.logs(job_id)])
"""


def test_without_logging_configured_warnings_still_reach_stderr(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(SCRIPT))
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "jobs.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['plain warning from the task', 'ctx warning from the task']"
    printed = [
        line for line in done.stderr.splitlines() if "from the task" in line or "after" in line
    ]
    assert printed == ["plain warning from the task", "ctx warning from the task", "after the job"]


def test_a_ctx_logger_record_names_the_tasks_line() -> None:
    import logging

    from sqljobs import JobContext
    from sqljobs._utils import utcnow
    from sqljobs.jobs import Job, JobState

    now = utcnow()
    job = Job(1, "t", "default", {}, JobState.RUNNING, 0, 1, 3, now, now)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger = logging.getLogger("sqljobs.task")
    logger.addHandler(handler)
    try:
        JobContext(job).logger.warning("here")
    finally:
        logger.removeHandler(handler)
    [record] = records
    assert (
        record.pathname == __file__
        and record.funcName == "test_a_ctx_logger_record_names_the_tasks_line"
    )
