"""The reference app: ``uvicorn examples.records.app:app``.

The classic scenario — an endpoint that updates a record in the background with its own
session — done with sqljobs: the job is inserted in the request's transaction (it exists iff
the request commits), survives restarts and crashes, runs with a session of its own, retries
with backoff, and its state is visible next to the record.

Environment: ``DATABASE_URL`` (see database.py), ``RECORDS_FAILURE_RATE`` and
``RECORDS_WORK_SECONDS`` (see tasks.py), ``SQLJOBS_CONCURRENCY`` (4), ``SQLJOBS_LEASE``
(30 s), ``SQLJOBS_GRACE`` (10 s), ``SQLJOBS_POLL_INTERVAL`` (0.5 s), and
``SQLJOBS_IN_PROCESS_WORKER=0`` to leave the jobs to ``sqljobs worker examples.records.app:jobs``
processes instead.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

import sqljobs.fastapi
from sqljobs import JobNotFound
from sqljobs.schema import jobs_table

from .database import async_engine, engine, get_async_db, get_db, jobs
from .models import Base, Record
from .tasks import check_record, refresh_record


@asynccontextmanager
async def app_lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Quick-start schema creation; in production, Alembic (docs/alembic.md) owns both the
    # app's tables and sqljobs.metadata.
    Base.metadata.create_all(engine)
    jobs.create_schema()
    yield
    await async_engine.dispose()
    engine.dispose()


# The in-process worker starts after app_lifespan's startup and is drained (running jobs get
# SQLJOBS_GRACE seconds, the rest go back to the queue) before its shutdown.
app = FastAPI(
    title="records — sqljobs reference app",
    lifespan=sqljobs.fastapi.lifespan(
        jobs,
        wrap=app_lifespan,
        concurrency=int(os.environ.get("SQLJOBS_CONCURRENCY", "4")),
        lease=float(os.environ.get("SQLJOBS_LEASE", "30")),
        grace=float(os.environ.get("SQLJOBS_GRACE", "10")),
        poll_interval=float(os.environ.get("SQLJOBS_POLL_INTERVAL", "0.5")),
        enabled=os.environ.get("SQLJOBS_IN_PROCESS_WORKER", "1") != "0",
    ),
)

DB = Annotated[Session, Depends(get_db)]
AsyncDB = Annotated[AsyncSession, Depends(get_async_db)]
# Bound to the same session as `DB` in the same request: FastAPI resolves get_db once.
Enqueue = Annotated[sqljobs.fastapi.Enqueuer, Depends(sqljobs.fastapi.enqueuer(get_db))]
AsyncEnqueue = Annotated[
    sqljobs.fastapi.AsyncEnqueuer, Depends(sqljobs.fastapi.async_enqueuer(get_async_db))
]


class NewRecord(BaseModel):
    name: str


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/records", status_code=201)
def create_record(body: NewRecord, db: DB) -> dict[str, Any]:
    record = Record(name=body.name)
    db.add(record)
    db.commit()
    return _record_json(record, None)


class NewRecords(BaseModel):
    count: int = Field(ge=1, le=10_000)
    prefix: str = "record"


@app.post("/records/batch", status_code=201)
def create_records(body: NewRecords, db: DB) -> dict[str, list[int]]:
    records = [Record(name=f"{body.prefix} {n}") for n in range(1, body.count + 1)]
    db.add_all(records)
    db.commit()
    return {"ids": [record.id for record in records]}


@app.post("/records/{record_id}/refresh", status_code=202)
def refresh(record_id: int, db: DB, enqueue: Enqueue) -> dict[str, Any]:
    """Refresh the record in the background. The job joins this request's transaction."""
    record = db.get(Record, record_id)
    if record is None:
        raise HTTPException(404, f"no record {record_id}")
    record.job_id = enqueue(refresh_record, record_id=record_id)
    record.status = "queued"
    db.commit()  # the job and the record's new status commit together, or neither does
    return {"record_id": record_id, "job_id": record.job_id}


@app.post("/records/{record_id}/check", status_code=202)
async def check(record_id: int, db: AsyncDB, enqueue: AsyncEnqueue) -> dict[str, Any]:
    """The async flavour: an AsyncSession in the endpoint, an async task in the worker."""
    if await db.get(Record, record_id) is None:
        raise HTTPException(404, f"no record {record_id}")
    job_id = await enqueue(check_record, record_id=record_id)
    await db.commit()
    return {"record_id": record_id, "job_id": job_id}


@app.get("/records/{record_id}")
def read_record(record_id: int, db: DB) -> dict[str, Any]:
    """The record, and the state of its last refresh job (attempts, errors)."""
    record = db.get(Record, record_id)
    if record is None:
        raise HTTPException(404, f"no record {record_id}")
    job = None
    if record.job_id is not None:
        try:
            job = jobs.get(record.job_id)
        except JobNotFound:  # pruned
            job = None
    return _record_json(record, job)


@app.get("/stats")
def stats(db: DB) -> dict[str, Any]:
    """Jobs by state, retries, and what the records show was applied."""
    by_state: dict[str, int] = {}
    for (_queue, state), count in jobs.counts().items():
        by_state[state.value] = by_state.get(state.value, 0) + count
    finished_ok = jobs_table.c.state.in_(["completed", "running"])
    retried, failed_attempts = db.execute(
        select(
            _count_where(jobs_table.c.attempt > 1),
            func.coalesce(
                func.sum(case((finished_ok, jobs_table.c.attempt - 1), else_=jobs_table.c.attempt)),
                0,
            ),
        )
    ).one()
    records, fresh, refreshes, checks = db.execute(
        select(
            func.count(),
            _count_where(Record.status == "fresh"),
            func.coalesce(func.sum(Record.refresh_count), 0),
            func.coalesce(func.sum(Record.check_count), 0),
        )
    ).one()
    return {
        "jobs": by_state,
        "retried_jobs": int(retried),
        "failed_attempts": int(failed_attempts),
        "records": {
            "total": int(records),
            "fresh": int(fresh),
            "refreshes_applied": int(refreshes),
            "checks_applied": int(checks),
        },
    }


def _count_where(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _record_json(record: Record, job: sqljobs.Job | None) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "status": record.status,
        "value": record.value,
        "refresh_count": record.refresh_count,
        "refreshed_at": record.refreshed_at.isoformat() if record.refreshed_at else None,
        "check_count": record.check_count,
        "job": None
        if job is None
        else {
            "id": job.id,
            "state": job.state.value,
            "attempt": job.attempt,
            "max_attempts": job.max_attempts,
            "errors": [
                {"attempt": e.attempt, "type": e.type, "message": e.message} for e in job.errors
            ],
        },
    }
