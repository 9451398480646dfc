"""Encrypts and decrypts secret job arguments with the app's Fernet keys (``cryptography``,
imported only here and only when a JobQueue is given ``secret_keys``).

A sealed value is ``{"$secret": token}``: the token is Fernet (AES-128-CBC and
HMAC-SHA256) over the JSON ``[task, argument, value]``, so a token copied into another job's
row, or to another argument, is refused rather than handed to a task that would show it.
``MultiFernet``: the first key encrypts, every key decrypts (rotation).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ._secrets import MARKER
from .exceptions import ConfigurationError, InvalidArguments, SecretNotReadable, SecretsErased

GENERATE_KEY = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)

SecretKeys = Sequence[str | bytes] | str


def key_list(keys: SecretKeys) -> list[str | bytes]:
    """``keys`` as a list: a str holds comma-separated keys (e.g. an environment variable)."""
    if isinstance(keys, str):
        return [key.strip() for key in keys.split(",") if key.strip()]
    if isinstance(keys, bytes):
        return [keys]
    return list(keys)


class Keyring:
    """Seals and opens secret arguments; never shows a key, a token or a value."""

    def __init__(self, keys: SecretKeys) -> None:
        listed = key_list(keys)
        if not listed:
            raise ConfigurationError("secret_keys holds no key; generate one with: " + GENERATE_KEY)
        try:
            from cryptography.fernet import Fernet, InvalidToken, MultiFernet
        except ImportError:
            raise ConfigurationError(
                "secret_keys needs the cryptography package: pip install 'sqljobs[secrets]'"
            ) from None
        fernets = []
        for index, key in enumerate(listed):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                raise ConfigurationError(
                    f"secret_keys[{index}] is not a Fernet key (32 url-safe base64-encoded "
                    f"bytes); generate one with: {GENERATE_KEY}"
                ) from None
        self._fernet = MultiFernet(fernets)
        self._invalid_token = InvalidToken
        self.size = len(fernets)

    def __repr__(self) -> str:
        return f"<Keyring {self.size} key(s)>"

    def seal(self, task: str, name: str, value: Any) -> dict[str, Any]:
        plaintext = json.dumps([task, name, value], separators=(",", ":")).encode()
        return {MARKER: self._fernet.encrypt(plaintext).decode("ascii")}

    def open(self, task: str, name: str, stored: dict[str, Any]) -> Any:
        """The value sealed in ``stored``. Raises :class:`SecretsErased`,
        :class:`SecretNotReadable` (no key of this keyring decrypts it) or
        :class:`InvalidArguments` (sealed for another task or argument)."""
        token = stored[MARKER]
        if token is None:
            raise SecretsErased(
                f"{task}: secret argument {name!r} was erased when the job finished; enqueue "
                "a new job with the secret"
            )
        try:
            if not isinstance(token, str):
                raise self._invalid_token
            plaintext = self._fernet.decrypt(token.encode("ascii"))
        except (self._invalid_token, UnicodeEncodeError):
            raise SecretNotReadable(
                f"{task}: secret argument {name!r} cannot be decrypted with this process's "
                f"{self.size} secret key(s): it was sealed with a key they do not hold (add "
                "the key it was sealed with to secret_keys, after the current one), or the "
                "row was altered"
            ) from None
        bound_task, bound_name, value = json.loads(plaintext)
        if (bound_task, bound_name) != (task, name):
            raise InvalidArguments(
                f"{task}: secret argument {name!r} holds a secret sealed for another task or "
                "argument (the row was altered); refusing to run it"
            )
        return value
