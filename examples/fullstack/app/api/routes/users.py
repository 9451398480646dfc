"""Users: sign-up sends the new-account e-mail in the background."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException
from sqlmodel import select

from ... import crud
from ...jobs import send_new_account_email
from ...models import (
    Item,
    ItemCreate,
    ItemPublic,
    ItemsPublic,
    User,
    UserCreate,
    UserPublic,
    UserRegister,
)
from ..deps import EnqueueDep, SessionDep

router = APIRouter(prefix="/users", tags=["users"])


@router.post("/signup", response_model=UserPublic)
def register_user(session: SessionDep, enqueue: EnqueueDep, user_in: UserRegister) -> User:
    """Create a new user and send them the new-account e-mail."""
    if crud.get_user_by_email(session=session, email=user_in.email) is not None:
        raise HTTPException(400, "The user with this email already exists in the system")
    user = crud.create_user(session=session, user_create=UserCreate.model_validate(user_in))
    enqueue(send_new_account_email, user_id=user.id)  # in this request's transaction
    session.commit()  # the user and the e-mail job, or neither
    session.refresh(user)
    return user


@router.get("/{user_id}", response_model=UserPublic)
def read_user_by_id(user_id: uuid.UUID, session: SessionDep) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise HTTPException(404, "User not found")
    return user


# Items by owner. The template's JWT login (and so "my items") is left out: it does not touch
# the jobs.
@router.post("/{user_id}/items", response_model=ItemPublic)
def create_item(user_id: uuid.UUID, session: SessionDep, item_in: ItemCreate) -> Item:
    if session.get(User, user_id) is None:
        raise HTTPException(404, "User not found")
    item = crud.create_item(session=session, item_in=item_in, owner_id=user_id)
    session.commit()
    session.refresh(item)
    return item


@router.get("/{user_id}/items", response_model=ItemsPublic)
def read_items(user_id: uuid.UUID, session: SessionDep) -> ItemsPublic:
    items = session.exec(select(Item).where(Item.owner_id == user_id)).all()
    return ItemsPublic(data=[ItemPublic.model_validate(i) for i in items], count=len(items))
