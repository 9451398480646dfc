"""The app's own table: records that a background job refreshes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Record(Base):
    __tablename__ = "records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    #: new -> queued (a refresh job is enqueued) -> fresh (the job applied it)
    status: Mapped[str] = mapped_column(String(20), default="new")
    value: Mapped[int | None] = mapped_column(Integer, default=None)
    #: How many refreshes were applied: exactly one per completed refresh job.
    refresh_count: Mapped[int] = mapped_column(Integer, default=0)
    refreshed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    #: How many async checks were applied (by the async task).
    check_count: Mapped[int] = mapped_column(Integer, default=0)
    #: The last refresh job, to show its state next to the record.
    job_id: Mapped[int | None] = mapped_column(Integer, default=None)
