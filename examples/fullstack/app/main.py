"""The app: ``uvicorn examples.fullstack.app.main:app`` (after ``alembic upgrade head``).

The lifespan runs an in-process sqljobs worker: it starts with the app, and on shutdown stops
claiming, lets running e-mail jobs finish and gives the rest back to the queue. Each uvicorn
worker process (``--workers 4``) runs its own. ``SQLJOBS_IN_PROCESS_WORKER=0`` leaves the jobs
to ``sqljobs worker examples.fullstack.app.jobs:jobs`` processes instead.
"""

from __future__ import annotations

from fastapi import FastAPI

import sqljobs.fastapi

from .api.main import api_router
from .core.config import settings
from .jobs import jobs

app = FastAPI(
    title=settings.PROJECT_NAME,
    openapi_url=f"{settings.API_V1_STR}/openapi.json",
    lifespan=sqljobs.fastapi.lifespan(
        jobs,
        concurrency=settings.SQLJOBS_CONCURRENCY,
        enabled=settings.SQLJOBS_IN_PROCESS_WORKER,
    ),
)
app.include_router(api_router, prefix=settings.API_V1_STR)
