"""Password recovery: the e-mail with the reset link goes out in the background."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from ... import crud
from ...core.security import get_password_hash
from ...jobs import send_password_recovery_email
from ...models import Message, NewPassword
from ...utils import verify_password_reset_token
from ..deps import EnqueueDep, SessionDep

router = APIRouter(tags=["login"])


@router.post("/password-recovery/{email}")
def recover_password(email: str, session: SessionDep, enqueue: EnqueueDep) -> Message:
    """Send a password recovery e-mail. The answer is the same whether or not the address has
    an account, so it does not tell who is registered."""
    user = crud.get_user_by_email(session=session, email=email)
    if user is not None:
        enqueue(send_password_recovery_email, user_id=user.id)
        session.commit()
    return Message(message="If that email is registered, we sent a password recovery link")


@router.post("/reset-password/")
def reset_password(session: SessionDep, body: NewPassword) -> Message:
    email = verify_password_reset_token(token=body.token)
    if email is None:
        raise HTTPException(400, "Invalid token")
    user = crud.get_user_by_email(session=session, email=email)
    if user is None or not user.is_active:
        raise HTTPException(400, "Invalid token")
    user.hashed_password = get_password_hash(password=body.new_password)
    session.commit()
    return Message(message="Password updated successfully")
