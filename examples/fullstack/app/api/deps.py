"""Dependencies: the request's session, and an enqueuer bound to that same session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlmodel import Session

from sqljobs.fastapi import Enqueuer, enqueuer

from ..core.db import SessionLocal


def get_db() -> Iterator[Session]:
    with SessionLocal() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]
# FastAPI resolves get_db once per request: the enqueuer writes in SessionDep's transaction.
EnqueueDep = Annotated[Enqueuer, Depends(enqueuer(get_db))]
