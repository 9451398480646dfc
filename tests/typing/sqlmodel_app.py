"""A SQLModel app as users write it; tests/integration/test_sqlmodel.py type-checks it with
mypy --strict and runs its task."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Field, Session, SQLModel, select

import sqljobs


class Hero(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str
    powers: int = 0


def make_queue(engine: Engine) -> tuple[sqljobs.JobQueue, sqljobs.Task[..., int]]:
    SessionLocal = sessionmaker(engine, class_=Session)  # the app's own, used by its routes
    jobs = sqljobs.JobQueue(SessionLocal)

    @jobs.task
    def train(session: Session, name: str) -> int:
        hero: Hero = session.exec(select(Hero).where(Hero.name == name)).one()
        hero.powers += 1
        return hero.powers

    return jobs, train
