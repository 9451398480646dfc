"""The app of the steps acceptance test (``sqljobs worker`` processes): a 5-step job whose
steps each write an effect row and return a fresh token, committed together."""

from __future__ import annotations

import os
import random
import time
import uuid
from pathlib import Path

from sqlalchemy import Integer, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from sqljobs import Backoff, JobContext, JobQueue

engine = create_engine(os.environ["SQLJOBS_TEST_DATABASE_URL"], pool_size=8)
SessionLocal = sessionmaker(engine)
jobs = JobQueue(SessionLocal)
STEPS = 5


class Base(DeclarativeBase):
    pass


class StepEffect(Base):
    """One row per run of a step that committed: exactly one per (job, step) must exist."""

    __tablename__ = "test_step_effects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(Integer)
    step: Mapped[str] = mapped_column(String(20))
    token: Mapped[str] = mapped_column(String(40))


def effect(session: Session, job_id: int, step: str, runs_log: str) -> str:
    """The step: its database effect and its result commit together; the line in
    ``runs_log`` is its outside effect (at-least-once: a killed run leaves its line)."""
    with open(runs_log, "a") as runs:
        runs.write(f"{job_id} {step}\n")
    token = uuid.uuid4().hex
    session.add(StepEffect(job_id=job_id, step=step, token=token))
    session.flush()
    time.sleep(random.uniform(0.02, 0.2))  # the step's work: a kill often lands here
    return token


@jobs.task(name="five_steps", max_attempts=100, backoff=Backoff(base=0.05, jitter=0))
def five_steps(ctx: JobContext, runs_log: str) -> list[str]:
    tokens = []
    for n in range(1, STEPS + 1):
        time.sleep(random.uniform(0, 0.05))  # between steps: kills land here too
        step = f"step-{n}"
        tokens.append(ctx.step(step, effect, job_id=ctx.job_id, step=step, runs_log=runs_log))
    return tokens


def create_tables() -> None:
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    jobs.create_schema()


def log_path() -> Path:
    return Path(os.environ.get("SQLJOBS_TEST_RUNS_LOG", "runs.log"))
