"""A FastAPI app whose endpoint schedules the benchmark job with ``BackgroundTasks``
(``uvicorn bench.apps.fastapi_app:app``). The job is a sync function: Starlette runs it in
its thread pool (40 threads by default) after the response, with a new ``SessionLocal()``."""

from __future__ import annotations

import os
from typing import Any

from fastapi import BackgroundTasks, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from bench.jobbody import record_request, run_with_own_session

engine = create_engine(os.environ["BENCH_PG_URL"])
SessionLocal = sessionmaker(engine)
app = FastAPI()


def work(run: str, i: int, mode: str, hold_ms: int, t0: float) -> None:
    try:
        run_with_own_session(SessionLocal, run, i, mode, hold_ms, t0)
    except Exception:  # recorded in the marker file; a real app would log it
        pass


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/jobs")
def enqueue(job: dict[str, Any], background_tasks: BackgroundTasks) -> dict[str, int]:
    background_tasks.add_task(work, **job)
    return {"i": int(job["i"])}


@app.post("/requests")
def request(job: dict[str, Any], background_tasks: BackgroundTasks) -> dict[str, int]:
    """W4: the endpoint's own write, committed, then the job handed to BackgroundTasks."""
    with SessionLocal() as session:
        record_request(session, job["run"], int(job["i"]))
        session.commit()
    background_tasks.add_task(work, **job)
    return {"i": int(job["i"])}
