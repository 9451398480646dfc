"""E-mails, as in the template's utils.py; ``send_email`` writes to the outbox in the session
it is given (the job's) instead of talking SMTP."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from .core.config import settings
from .core.security import sign, unsign
from .models import OutboxEmail


@dataclass
class EmailData:
    html_content: str
    subject: str


def send_email(*, session: Session, email_to: str, subject: str, html_content: str) -> None:
    session.add(OutboxEmail(email_to=email_to, subject=subject, html_content=html_content))


def generate_new_account_email(email_to: str, username: str) -> EmailData:
    subject = f"{settings.PROJECT_NAME} - New account for user {username}"
    link = settings.FRONTEND_HOST
    html_content = (
        f"<p>Welcome to {settings.PROJECT_NAME}, {username}.</p>"
        f'<p>Your account for {email_to} is ready: <a href="{link}">log in</a>.</p>'
    )
    return EmailData(html_content=html_content, subject=subject)


def generate_reset_password_email(email_to: str, email: str, token: str) -> EmailData:
    subject = f"{settings.PROJECT_NAME} - Password recovery for user {email}"
    link = f"{settings.FRONTEND_HOST}/reset-password?token={token}"
    html_content = (
        f"<p>We received a request to recover the password of {email_to}.</p>"
        f'<p><a href="{link}">Reset your password</a> within '
        f"{settings.EMAIL_RESET_TOKEN_EXPIRE_HOURS} hours.</p>"
    )
    return EmailData(html_content=html_content, subject=subject)


def generate_password_reset_token(email: str) -> str:
    return sign(email, expires_in_seconds=settings.EMAIL_RESET_TOKEN_EXPIRE_HOURS * 3600)


def verify_password_reset_token(token: str) -> str | None:
    return unsign(token)
