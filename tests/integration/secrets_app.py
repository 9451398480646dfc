"""An app with a secret task for the CLI tests (database and keys from the environment)."""

from __future__ import annotations

import os

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from sqljobs import JobQueue, Secret

engine = create_engine(os.environ["SQLJOBS_TEST_DATABASE_URL"])
SessionLocal = sessionmaker(engine)
jobs = JobQueue(SessionLocal, secret_keys=os.environ["SQLJOBS_TEST_SECRET_KEYS"])


@jobs.task(name="signup")
def signup(email: str, password: Secret[str]) -> None:
    pass
