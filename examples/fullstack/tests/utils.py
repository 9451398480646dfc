"""Small helpers for the example's tests."""

from __future__ import annotations

import uuid

from sqlmodel import select

import sqljobs
from examples.fullstack.app.core.db import SessionLocal, jobs
from examples.fullstack.app.models import OutboxEmail


def random_email() -> str:
    return f"{uuid.uuid4().hex[:12]}@example.com"


def jobs_for_user(task: sqljobs.Task[None], user_id: str) -> list[sqljobs.Job]:
    """Every job of ``task`` for this user, whatever its state (UUIDs are stored as text)."""
    found = jobs.list_jobs(task=task.name, limit=10_000)
    return [job for job in found if job.args == {"user_id": user_id}]


def outbox(email_to: str) -> list[OutboxEmail]:
    """The e-mails sent to ``email_to``, read in a new session: one held across a job's commit
    would keep reading its old snapshot on MariaDB (REPEATABLE READ)."""
    with SessionLocal() as session:
        query = select(OutboxEmail).where(OutboxEmail.email_to == email_to)
        return list(session.exec(query).all())
