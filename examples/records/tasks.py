"""The background work. Each attempt gets its own session from sqljobs — never the request's —
and the worker commits the task's writes together with the job's completion.

``RECORDS_FAILURE_RATE`` (default 0.25) makes the pretend upstream fail that often, *after*
the record was already changed: the attempt's writes roll back and the job is retried with
backoff, so a record is refreshed exactly once per completed job however often it failed.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from datetime import datetime, timezone

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from sqljobs import Backoff

from .database import jobs
from .models import Record

FAILURE_RATE = float(os.environ.get("RECORDS_FAILURE_RATE", "0.25"))
#: Seconds the pretend upstream takes per call.
WORK_SECONDS = float(os.environ.get("RECORDS_WORK_SECONDS", "0.005"))


class UpstreamUnavailable(Exception):
    """The pretend upstream service failed (it does, sometimes)."""


@jobs.task(name="records.refresh", max_attempts=4, backoff=Backoff(base=0.2), timeout=30)
def refresh_record(session: Session, record_id: int) -> int:
    """Fetch a record's new value from upstream and store it."""
    record = session.get(Record, record_id)
    if record is None:
        return 0  # deleted meanwhile: nothing to do, not an error
    time.sleep(WORK_SECONDS)
    record.value = random.randint(1, 1_000_000)
    record.status = "fresh"
    record.refresh_count += 1
    record.refreshed_at = datetime.now(timezone.utc)
    session.flush()  # the write happened...
    if random.random() < FAILURE_RATE:
        # ...and still vanishes: the worker rolls this session back and retries later.
        raise UpstreamUnavailable(f"upstream did not confirm record {record_id}")
    return record.value


@jobs.task(name="records.check", max_attempts=4, backoff=Backoff(base=0.2), timeout=30)
async def check_record(session: AsyncSession, record_id: int) -> None:
    """An ``async def`` task: it gets an AsyncSession of its own, in the same queue and worker
    as the sync task above."""
    await asyncio.sleep(WORK_SECONDS)
    await session.execute(
        update(Record).where(Record.id == record_id).values(check_count=Record.check_count + 1)
    )
