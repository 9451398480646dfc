"""SQLModel models and API schemas, shaped like FastAPI's full-stack template, plus the
outbox the e-mail jobs write to (it stands in for SMTP)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from pydantic import EmailStr
from sqlalchemy import Text
from sqlmodel import Field, SQLModel


# Shared properties
class UserBase(SQLModel):
    email: EmailStr = Field(unique=True, index=True, max_length=255)
    is_active: bool = True
    is_superuser: bool = False
    full_name: str | None = Field(default=None, max_length=255)


# Properties to receive via API on creation
class UserCreate(UserBase):
    password: str = Field(min_length=8, max_length=128)


class UserRegister(SQLModel):
    email: EmailStr = Field(max_length=255)
    password: str = Field(min_length=8, max_length=128)
    full_name: str | None = Field(default=None, max_length=255)


# Database model, database table inferred from class name
class User(UserBase, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    hashed_password: str = Field(max_length=255)


# Properties to return via API, id is always required
class UserPublic(UserBase):
    id: uuid.UUID


class ItemBase(SQLModel):
    title: str = Field(min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=255)


class ItemCreate(ItemBase):
    pass


class Item(ItemBase, table=True):
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(foreign_key="user.id", nullable=False, ondelete="CASCADE")


class ItemPublic(ItemBase):
    id: uuid.UUID
    owner_id: uuid.UUID


class ItemsPublic(SQLModel):
    data: list[ItemPublic]
    count: int


class Message(SQLModel):
    message: str


class NewPassword(SQLModel):
    token: str
    new_password: str = Field(min_length=8, max_length=128)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class OutboxEmail(SQLModel, table=True):
    """An e-mail as the app would hand it to SMTP. Written in the job's own session, so it
    commits with the job's completion: each job's e-mail is here exactly once. A relay that
    sends these rows and marks them sent would make delivery at-least-once, as SMTP is."""

    __tablename__ = "outbox_email"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email_to: str = Field(index=True, max_length=255)
    subject: str = Field(max_length=255)
    html_content: str = Field(sa_type=Text)  # unbounded on every database
    created_at: datetime = Field(default_factory=_now)
