"""Password hashing and signed, expiring tokens, with the standard library only (the template
uses pwdlib and PyJWT; any would do here)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time

from .config import settings

_ITERATIONS = 100_000


def get_password_hash(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _ITERATIONS)
    return f"pbkdf2_sha256${_ITERATIONS}${salt.hex()}${digest.hex()}"


def verify_password(plain_password: str, hashed_password: str) -> bool:
    _scheme, iterations, salt, digest = hashed_password.split("$")
    candidate = hashlib.pbkdf2_hmac(
        "sha256", plain_password.encode(), bytes.fromhex(salt), int(iterations)
    )
    return hmac.compare_digest(candidate.hex(), digest)


def sign(subject: str, *, expires_in_seconds: int) -> str:
    """``subject`` and an expiry, signed with SECRET_KEY."""
    payload = f"{subject}|{int(time.time()) + expires_in_seconds}".encode()
    signature = hmac.new(settings.SECRET_KEY.encode(), payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(signature)}"


def unsign(token: str) -> str | None:
    """The subject of a token this app signed and that has not expired, else None."""
    try:
        payload_part, signature_part = token.split(".")
        payload = base64.urlsafe_b64decode(payload_part + "==")
        signature = base64.urlsafe_b64decode(signature_part + "==")
    except ValueError:
        return None
    expected = hmac.new(settings.SECRET_KEY.encode(), payload, hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        return None
    subject, _, expires = payload.decode().rpartition("|")
    return subject if int(expires) >= time.time() else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
