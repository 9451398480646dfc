"""CSRF protection for the dashboard's forms: a signed double-submit token.

A GET of any dashboard page sets the cookie ``sqljobs_csrf`` (``nonce.signature``, HMAC-SHA256
with the router's secret; ``HttpOnly``, ``SameSite=Strict``) and puts the same value in each
form's hidden ``csrf_token`` field. A POST is accepted only when the field equals the cookie
and the signature is valid — another site can neither read the cookie nor forge a signed one —
and, when the browser says where the request comes from (``Origin``, ``Sec-Fetch-Site``),
only from this same origin.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "sqljobs_csrf"
FIELD = "csrf_token"
HEADER = "x-csrf-token"


class CsrfError(Exception):
    """The request failed the CSRF check (the message says why)."""


class CsrfProtect:
    def __init__(self, secret: bytes | str | None, *, cookie_path: str = "/") -> None:
        if isinstance(secret, str):
            secret = secret.encode()
        self._secret = secret or secrets.token_bytes(32)
        self.cookie_path = cookie_path

    def _sign(self, nonce: str) -> str:
        return hmac.new(self._secret, nonce.encode(), hashlib.sha256).hexdigest()

    def _valid(self, token: str | None) -> bool:
        if not token or "." not in token:
            return False
        nonce, _, signature = token.partition(".")
        return hmac.compare_digest(self._sign(nonce), signature)

    def token_for(self, request: Request) -> tuple[str, bool]:
        """The token to put in forms, and whether it is new (then set it as the cookie)."""
        current = request.cookies.get(COOKIE)
        if self._valid(current):
            return str(current), False
        nonce = secrets.token_urlsafe(24)
        return f"{nonce}.{self._sign(nonce)}", True

    def set_cookie(self, response: Response, token: str, *, secure: bool) -> None:
        response.set_cookie(
            COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=secure,
            path=self.cookie_path,
        )

    def verify(self, request: Request, submitted: str | None) -> None:
        """Raise :class:`CsrfError` unless ``submitted`` matches the signed cookie."""
        check_same_origin(request)
        cookie = request.cookies.get(COOKIE)
        if not self._valid(cookie):
            raise CsrfError("missing or invalid CSRF cookie: reload the page and try again")
        if not submitted or not hmac.compare_digest(str(cookie), submitted):
            raise CsrfError("CSRF token does not match: reload the page and try again")


def check_same_origin(request: Request) -> None:
    """Refuse a request that the browser marks as coming from another site."""
    if request.headers.get("sec-fetch-site", "same-origin") not in (
        "same-origin",
        "none",
    ):
        raise CsrfError("cross-site request refused")
    origin = request.headers.get("origin")
    if origin and origin != "null":
        parts = urlsplit(origin)
        if parts.netloc != request.headers.get("host", request.url.netloc):
            raise CsrfError(f"request from origin {origin} refused")
    elif origin == "null":
        raise CsrfError("request from an opaque origin refused")
