"""The FastAPI app: async endpoints on AsyncSession, jobs enqueued in the request's transaction.

``uvicorn examples.asyncapp.app.main:app`` serves it with an in-process worker that runs the
async tasks on the app's own event loop (set ``SQLJOBS_IN_PROCESS_WORKER=0`` to leave them to
``sqljobs worker`` processes).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

import sqljobs.fastapi
from sqljobs.fastapi import AsyncEnqueuer, async_enqueuer

from .db import AsyncSessionLocal, jobs
from .jobs import send_welcome_email
from .models import OutboxEmail, User


async def get_db() -> AsyncIterator[AsyncSession]:
    async with AsyncSessionLocal() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_db)]
# FastAPI resolves get_db once per request: the enqueuer writes in SessionDep's transaction.
# A sync dependency here (one giving a Session) is refused when this module is imported.
EnqueueDep = Annotated[AsyncEnqueuer, Depends(async_enqueuer(get_db))]

app = FastAPI(
    title="asyncapp — sqljobs async example",
    lifespan=sqljobs.fastapi.lifespan(
        jobs, enabled=os.environ.get("SQLJOBS_IN_PROCESS_WORKER", "1") != "0"
    ),
)


class SignUp(BaseModel):
    email: str


class SignedUp(BaseModel):
    id: int
    job_id: int


@app.post("/users", status_code=201)
async def sign_up(body: SignUp, db: SessionDep, enqueue: EnqueueDep) -> SignedUp:
    user = User(email=body.email)
    db.add(user)
    try:
        await db.flush()
    except IntegrityError:
        await db.rollback()
        raise HTTPException(409, f"{body.email} is already signed up") from None
    job_id = await enqueue(send_welcome_email, user_id=user.id)
    await db.commit()  # the user and its e-mail job exist together, or neither does
    return SignedUp(id=user.id, job_id=job_id)


@app.get("/users/{user_id}/emails")
async def emails(user_id: int, db: SessionDep) -> list[str]:
    found = await db.scalars(
        select(OutboxEmail.subject).where(OutboxEmail.user_id == user_id).order_by(OutboxEmail.id)
    )
    return list(found)
