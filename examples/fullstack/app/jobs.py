"""The background jobs: the e-mails the template sends inline, as sqljobs tasks.

Routes enqueue them in the request's session (``EnqueueDep``), so a job exists only if the
request commits. Each runs with a session of its own, opened for the attempt; what it writes
there (the outbox row) commits together with the job's completion, or not at all and the job
is retried. Separate worker processes: ``sqljobs worker examples.fullstack.app.jobs:jobs``.
"""

from __future__ import annotations

import uuid

from sqlmodel import Session

from .core.db import jobs
from .models import User
from .utils import (
    generate_new_account_email,
    generate_password_reset_token,
    generate_reset_password_email,
    send_email,
)

__all__ = ["jobs", "send_new_account_email", "send_password_recovery_email"]


@jobs.task(queue="emails", max_attempts=5, timeout=30)
def send_new_account_email(session: Session, user_id: uuid.UUID) -> None:
    user = session.get(User, user_id)  # loaded in the job's session, never the request's
    if user is None:  # deleted before the job ran
        return
    email = generate_new_account_email(email_to=user.email, username=user.email)
    send_email(
        session=session, email_to=user.email, subject=email.subject, html_content=email.html_content
    )


@jobs.task(queue="emails", max_attempts=5, timeout=30)
def send_password_recovery_email(session: Session, user_id: uuid.UUID) -> None:
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        return
    token = generate_password_reset_token(email=user.email)
    email = generate_reset_password_email(email_to=user.email, email=user.email, token=token)
    send_email(
        session=session, email_to=user.email, subject=email.subject, html_content=email.html_content
    )
