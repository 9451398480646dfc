"""The reference app (examples/records) as the e2e tests serve it with uvicorn, plus two
test-only endpoints: one that enqueues and then fails, and one that enqueues async probe
jobs recording which session and connection each attempt used."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from examples.records.app import DB as DBSession
from examples.records.app import AsyncEnqueue, Enqueue, app
from examples.records.database import jobs
from examples.records.models import Record
from examples.records.tasks import refresh_record
from fastapi import HTTPException
from pydantic import BaseModel
from sqlalchemy import BigInteger, Integer, String, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["app"]


class ProbeBase(DeclarativeBase):
    pass


class ProbeAttempt(ProbeBase):
    __tablename__ = "e2e_probe_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    session_token: Mapped[str] = mapped_column(String(40))
    connection_token: Mapped[str] = mapped_column(String(80))
    backend_id: Mapped[str] = mapped_column(String(40))
    started_ns: Mapped[int] = mapped_column(BigInteger)
    ended_ns: Mapped[int] = mapped_column(BigInteger)


@jobs.task(name="e2e.probe", max_attempts=1)
async def probe(session: AsyncSession, n: int, hold: float) -> None:
    if "probe" in session.info:
        raise AssertionError("this AsyncSession already served another attempt")
    token = session.info["probe"] = uuid.uuid4().hex
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    if connection.dialect.name == "postgresql":
        backend = str((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())
    elif connection.dialect.name in ("mysql", "mariadb"):
        backend = str((await session.execute(text("SELECT CONNECTION_ID()"))).scalar_one())
    else:
        backend = f"sqlite:{id(raw.driver_connection)}"
    started = time.monotonic_ns()
    await asyncio.sleep(hold)
    session.add(
        ProbeAttempt(
            n=n,
            session_token=token,
            connection_token=str(id(raw.driver_connection)),
            backend_id=backend,
            started_ns=started,
            ended_ns=time.monotonic_ns(),
        )
    )


@app.post("/_e2e/records/{record_id}/refresh-then-fail", status_code=202)
def refresh_then_fail(record_id: int, db: DBSession, enqueue: Enqueue) -> dict[str, Any]:
    """Enqueue exactly like the real endpoint, then fail before the commit."""
    record = db.get(Record, record_id)
    if record is None:
        raise HTTPException(404)
    record.job_id = enqueue(refresh_record, record_id=record_id)
    record.status = "queued"
    db.flush()  # the job row and the record change were sent to the database...
    raise HTTPException(409, {"job_id": record.job_id})  # ...and are rolled back


class RecordIds(BaseModel):
    ids: list[int]


@app.post("/_e2e/records/refresh", status_code=202)
def refresh_many(body: RecordIds, db: DBSession, enqueue: Enqueue) -> dict[str, Any]:
    """Enqueue a refresh for each record in one transaction (a backlog for the kill test)."""
    job_ids = enqueue.enqueue_many(refresh_record, [{"record_id": i} for i in body.ids])
    db.commit()
    return {"job_ids": job_ids}


@app.post("/_e2e/probes", status_code=202)
async def enqueue_probes(count: int, hold: float, enqueue: AsyncEnqueue) -> dict[str, Any]:
    ids = await enqueue.enqueue_many(probe, [{"n": n, "hold": hold} for n in range(count)])
    await enqueue.session.commit()
    return {"job_ids": ids}
