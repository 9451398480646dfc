"""A forked child (gunicorn --preload, multiprocessing) must not reuse the parent's pooled
connections: sqljobs disposes them in the child without closing them."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from sqljobs import JobQueue


@pytest.mark.needs("network_connection")
def test_a_forked_child_leaves_the_parents_connections_alone(jobs: JobQueue) -> None:
    @jobs.task
    def noted(n: int) -> None:
        pass

    with jobs.engine.connect() as conn:  # the pool now holds one idle connection
        parent_backend = conn.execute(text(_backend_id(jobs))).scalar_one()
    pid = os.fork()
    if pid == 0:  # the child: enqueue, then close every connection it holds
        code = 1
        try:
            noted.enqueue(n=1)
            jobs.engine.dispose()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with jobs.engine.connect() as conn:  # still the same, healthy connection
        assert conn.execute(text(_backend_id(jobs))).scalar_one() == parent_backend
    assert [job.args for job in jobs.list_jobs()] == [{"n": 1}]


def _backend_id(jobs: JobQueue) -> str:
    return (
        "SELECT pg_backend_pid()"
        if jobs.engine.dialect.name == "postgresql"
        else ("SELECT CONNECTION_ID()")
    )
