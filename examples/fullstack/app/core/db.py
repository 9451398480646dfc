"""The engine, the session factory and the job queue, all on the app's one database."""

from __future__ import annotations

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, create_engine

import sqljobs

from .config import settings

# Room for the in-process worker (concurrency + 3 connections) and for request threads.
engine = create_engine(settings.DATABASE_URL, pool_size=10, max_overflow=10, pool_pre_ping=True)
SessionLocal = sessionmaker(engine, class_=Session)  # the routes' sessions and the jobs'
# Jobs are rows in this database: a job enqueued in a request's session commits with it.
jobs = sqljobs.JobQueue(SessionLocal)
