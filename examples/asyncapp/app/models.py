"""Users, and the outbox the welcome e-mail job writes to (it stands in for SMTP)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "asyncapp_users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)


class OutboxEmail(Base):
    __tablename__ = "asyncapp_outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("asyncapp_users.id"))
    subject: Mapped[str] = mapped_column(String(200))
