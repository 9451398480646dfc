"""The background job: an async task with an AsyncSession of its own for each attempt.

What it writes (the outbox row) commits together with the job's completion, or not at all
and the job is retried. Separate worker processes:
``sqljobs worker examples.asyncapp.app.jobs:jobs``.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from .db import jobs
from .models import OutboxEmail, User

__all__ = ["jobs", "send_welcome_email"]


@jobs.task(name="asyncapp.send_welcome_email", queue="emails", max_attempts=5, timeout=30)
async def send_welcome_email(session: AsyncSession, user_id: int) -> None:
    user = await session.get(User, user_id)  # loaded in the job's session, never the request's
    if user is None:  # deleted before the job ran
        return
    session.add(OutboxEmail(user_id=user.id, subject=f"Welcome, {user.email}"))
