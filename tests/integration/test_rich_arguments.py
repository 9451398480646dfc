"""A real model's arguments through a real queue, on every database: a UUID primary key (the
FastAPI full-stack template's key type), an aware datetime, a Decimal, an Enum and a pydantic
model go in at enqueue, sit in the row as JSON, and reach the task as they were."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any

import pydantic

from sqljobs import JobQueue, JobState


class Plan(enum.Enum):
    PRO = "pro"


class Address(pydantic.BaseModel):
    street: str


def test_rich_arguments_reach_the_task_as_they_were_enqueued(jobs: JobQueue) -> None:
    received: list[dict[str, Any]] = []

    @jobs.task
    def welcome(
        user_id: uuid.UUID, at: dt.datetime, credit: Decimal, plan: Plan, address: Address
    ) -> None:
        received.append(
            {"user_id": user_id, "at": at, "credit": credit, "plan": plan, "address": address}
        )

    sent: dict[str, Any] = {
        "user_id": uuid.uuid4(),
        "at": dt.datetime(2026, 10, 25, 2, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        "credit": Decimal("10.05"),
        "plan": Plan.PRO,
        "address": Address(street="Main St 1"),
    }
    job_id = welcome.enqueue(**sent)
    stored = jobs.get(job_id).args
    assert stored == {
        "user_id": str(sent["user_id"]),
        "at": "2026-10-25T02:30:00+02:00",
        "credit": "10.05",
        "plan": "pro",
        "address": {"street": "Main St 1"},
    }
    jobs.drain()  # the worker's claim, executor and outcome path, in this thread
    assert jobs.get(job_id).state is JobState.COMPLETED
    assert received == [sent]
    assert type(received[0]["credit"]) is Decimal and received[0]["at"].utcoffset()
