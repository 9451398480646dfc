"""End to end: the reference app served by uvicorn in a subprocess, on each database, driven
over HTTP. A job whose request rolls back never runs; a server killed with SIGKILL while jobs
are pending and running is restarted and every job runs exactly once; async tasks under
concurrency 8 never share a session or a connection."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from examples.records.models import Base as RecordsBase
from examples.records.models import Record
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

import sqljobs
from sqljobs import JobState
from sqljobs.schema import jobs_table
from tests import capabilities
from tests.e2e.app import ProbeAttempt, ProbeBase
from tests.helpers import eventually, free_port

ROOT = Path(__file__).resolve().parents[2]


class Server:
    """``uvicorn tests.e2e.app:app`` on a free port, its output in a log file."""

    def __init__(self, db_url: str, log_path: Path, **env: str) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log_path = log_path
        self._log = log_path.open("a")
        settings = {
            "DATABASE_URL": db_url,
            "PYTHONPATH": str(ROOT),
            "RECORDS_FAILURE_RATE": "0",
            "SQLJOBS_POLL_INTERVAL": "0.1",
            # A crash (a signal) prints every thread's Python stack into the server's log.
            "PYTHONFAULTHANDLER": "1",
            **env,
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "tests.e2e.app:app",
                "--host",
                "127.0.0.1",
                "--port",
                self.url.rsplit(":", 1)[1],
                "--log-level",
                "info",
                "--no-access-log",
            ],
            cwd=ROOT,
            env={**os.environ, **settings},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, timeout=60)
        eventually(self._ready, timeout=60, interval=0.1)

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the server exited early:\n{self.log()}")
        try:
            return self.client.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stats(self) -> dict[str, Any]:
        response: dict[str, Any] = self.client.get("/stats").raise_for_status().json()
        return response

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.close()

    def stop(self) -> bool:
        """SIGTERM, as a process manager stops it: uvicorn's lifespan drains the worker.
        True if the shutdown was clean (uvicorn re-raises SIGTERM once it is done)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.close()
        return self.clean_exit

    @property
    def clean_exit(self) -> bool:
        log = self.log_path.read_text(errors="replace")
        return (
            self.proc.returncode in (0, -signal.SIGTERM)
            and "Application shutdown complete." in log
            and "Traceback" not in log
        )

    def close(self) -> None:
        self.client.close()
        self._log.close()


@pytest.fixture
def database(db_url: str) -> Iterator[Engine]:
    """The test's database, emptied of the app's tables (the app creates them at startup)."""
    engine = create_engine(db_url)
    for metadata in (ProbeBase.metadata, RecordsBase.metadata, sqljobs.metadata):
        metadata.drop_all(engine)
    ProbeBase.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def servers(db_url: str, database: Engine, tmp_path: Path) -> Iterator[Any]:
    started: list[Server] = []

    def start(**env: str) -> Server:
        server = Server(db_url, tmp_path / "server.log", **env)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.proc.poll() is None:
            server.stop()
    for server in started:
        if server.proc.returncode != -signal.SIGKILL and not server.clean_exit:
            log = server.log_path.read_text(errors="replace")
            pytest.fail(f"the server exited with {server.proc.returncode}:\n{log}")


def create_records(server: Server, count: int) -> list[int]:
    response = server.client.post("/records/batch", json={"count": count})
    ids: list[int] = response.raise_for_status().json()["ids"]
    return ids


def test_a_job_enqueued_in_a_request_that_rolls_back_never_runs(
    servers: Any, database: Engine
) -> None:
    server = servers(SQLJOBS_CONCURRENCY="2")
    doomed, control = create_records(server, 2)

    response = server.client.post(f"/_e2e/records/{doomed}/refresh-then-fail")
    assert response.status_code == 409
    never = response.json()["detail"]["job_id"]  # the id it had inside the transaction

    control_job = server.client.post(f"/records/{control}/refresh").json()["job_id"]
    eventually(lambda: server.stats()["jobs"].get("completed") == 1, timeout=60)
    assert server.client.get(f"/records/{control}").json()["job"]["state"] == "completed"

    record = server.client.get(f"/records/{doomed}").json()
    assert (record["status"], record["refresh_count"], record["job"]) == ("new", 0, None)
    with database.connect() as conn:
        rows = conn.execute(select(jobs_table.c.id, jobs_table.c.args)).all()
    assert [(row.id, row.args) for row in rows] == [(control_job, {"record_id": control})]
    assert never == control_job or never not in {row.id for row in rows}  # ids may be reused
    assert server.stop(), server.log()


def test_sigkill_with_jobs_pending_then_restart_runs_every_job_exactly_once(
    servers: Any, database: Engine
) -> None:
    settings = {
        "SQLJOBS_CONCURRENCY": "4",
        "SQLJOBS_LEASE": "2",
        "RECORDS_WORK_SECONDS": "0.3",
    }
    total = 60
    first = servers(**settings)
    record_ids = create_records(first, total)
    # One request commits the whole backlog, so jobs are still pending when the kill comes.
    response = first.client.post("/_e2e/records/refresh", json={"ids": record_ids})
    assert len(response.raise_for_status().json()["job_ids"]) == total

    seen: list[dict[str, int]] = []

    def mid_flight() -> bool:
        states: dict[str, int] = first.stats()["jobs"]
        seen.append(states)
        return states.get("completed", 0) >= 5 and states.get("running", 0) >= 1

    try:
        eventually(mid_flight, timeout=60)
    except AssertionError:
        print("job states seen:", seen[:3], "...", seen[-3:], "\n", first.log())
        raise
    first.kill()

    with database.connect() as conn:
        states = {
            row.id: JobState(row.state)
            for row in conn.execute(select(jobs_table.c.id, jobs_table.c.state))
        }
    assert len(states) == total
    running_at_kill = {job_id for job_id, state in states.items() if state is JobState.RUNNING}
    assert running_at_kill, "the server was killed too late: no job was running"

    second = servers(**settings)
    eventually(lambda: second.stats()["jobs"] == {"completed": total}, timeout=120)
    assert second.stop(), second.log()

    with Session(database) as db:
        records = list(db.scalars(select(Record)))
        jobs_after = {row.id: row for row in db.execute(select(jobs_table)).mappings().all()}
    assert len(records) == total
    assert {(r.status, r.refresh_count) for r in records} == {("fresh", 1)}
    assert len(jobs_after) == total
    for job_id, job in jobs_after.items():
        # Attempts beyond the first are only ever rescues of expired leases: the killed ones,
        # and (rarely, with this short lease on a loaded machine) a heartbeat that came late;
        # either way the attempt's writes were rolled back, as refresh_count == 1 shows.
        errors = [e["type"] for e in job["errors"]]
        # NeverStarted: claimed (prefetched) but not started when the server died; such a
        # rescue gives its attempt back.
        assert set(errors) <= {"LeaseExpired", "NeverStarted"}, job
        assert job["attempt"] == 1 + errors.count("LeaseExpired"), job
        if job_id in running_at_kill:  # its killed attempt left nothing; a rescue redid it
            assert errors, job


def test_async_tasks_under_concurrency_8_never_share_a_session_or_connection(
    servers: Any, database: Engine, dialect: str
) -> None:
    count = 16 if dialect == "sqlite" else 32
    server = servers(SQLJOBS_CONCURRENCY="8")
    response = server.client.post("/_e2e/probes", params={"count": count, "hold": 0.15})
    job_ids = response.raise_for_status().json()["job_ids"]
    assert len(job_ids) == count
    eventually(lambda: server.stats()["jobs"] == {"completed": count}, timeout=90)
    assert server.stop(), server.log()

    with Session(database) as db:
        attempts = list(db.scalars(select(ProbeAttempt)))
    assert sorted(a.n for a in attempts) == list(range(count))
    assert len({a.session_token for a in attempts}) == count
    overlaps = 0
    for a in attempts:
        for b in attempts:
            if a is not b and a.started_ns < b.ended_ns and b.started_ns < a.ended_ns:
                overlaps += 1
                assert a.connection_token != b.connection_token
                assert a.backend_id != b.backend_id
    if capabilities.has("concurrent_writers", dialect):
        assert overlaps > 0, "the probes never ran concurrently"


@pytest.mark.dialects(
    "sqlite", "postgresql", reason="logging does not depend on the database; two are enough"
)
def test_the_in_process_worker_says_when_it_starts_and_stops_under_uvicorns_default_logging(
    servers: Any, database: Engine
) -> None:
    """The app configures no logging: uvicorn's default shows only its own loggers, and the
    worker's lines come through uvicorn's, with the password hidden and stats for people."""
    server = servers(SQLJOBS_CONCURRENCY="2")
    [record] = create_records(server, 1)
    server.client.post(f"/records/{record}/refresh").raise_for_status()
    eventually(lambda: server.stats()["jobs"].get("completed") == 1, timeout=60)
    assert server.stop(), server.log()
    lines = server.log().splitlines()
    [started] = [line for line in lines if "started in-process" in line]
    [stopped] = [line for line in lines if line.startswith("INFO:") and " stopped: " in line]
    url = make_url(str(database.url))
    assert started.startswith("INFO:") and "queues=" in started and "concurrency=2" in started
    assert f"database={url.render_as_string(hide_password=True)}" in started
    assert "1 completed, 0 failed (to retry), 0 discarded" in stopped
    assert "WorkerStats(" not in server.log()
