"""Seals a task's ``Secret[...]`` arguments at enqueue and opens them before it runs (see
:mod:`sqljobs._secrets` for the stored form, :mod:`sqljobs._keyring` for the encryption).

No message here shows a secret's value: only the argument's name and the value's type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._arguments import to_json_value, type_check
from ._secrets import Secret, SecretParameter, is_sealed
from .exceptions import ConfigurationError, InvalidArguments, SerializationError

if TYPE_CHECKING:
    from ._keyring import Keyring


class SecretArguments:
    """The secret parameters of one task, with the keyring of its JobQueue (None: the task
    is refused at registration)."""

    def __init__(
        self, task_name: str, secrets: Mapping[str, SecretParameter], keyring: Keyring | None
    ) -> None:
        self.task_name = task_name
        self.secrets = dict(secrets)
        self.keyring = keyring
        self._checks = {
            name: check
            for name, secret in self.secrets.items()
            if (check := type_check(secret.inner)) is not None
        }

    def _keys(self) -> Keyring:
        if self.keyring is None:
            raise ConfigurationError(
                f"task {self.task_name} has secret arguments but no keyring: give its "
                "JobQueue secret_keys=[...]"
            )
        return self.keyring

    def seal(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """``kwargs`` with each secret (a plain value or a :class:`Secret`) encrypted."""
        sealed = dict(kwargs)
        for name, secret in self.secrets.items():
            if name not in sealed:
                continue
            value = sealed[name]
            if isinstance(value, Secret):
                value = value.get_secret_value()
            if value is None and secret.optional:
                continue
            check = self._checks.get(name)
            if check is not None and not check(value):
                expected = getattr(secret.inner, "__name__", str(secret.inner))
                raise InvalidArguments(
                    f"{self.task_name}: secret argument {name!r} should be {expected}, got a "
                    f"{type(value).__name__} (its value is not shown)"
                )
            try:
                value = to_json_value(value)
            except SerializationError:
                raise SerializationError(
                    f"{self.task_name}: secret argument {name!r} is a {type(value).__name__} "
                    "that is not plain JSON every database stores (its value is not shown); "
                    "pass a str, or plain JSON without NUL characters or lone surrogates"
                ) from None
            sealed[name] = self._keys().seal(self.task_name, name, value)
        return sealed

    def open(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Stored arguments with each sealed secret decrypted into a :class:`Secret`."""
        for name, secret in self.secrets.items():
            if name not in kwargs:
                continue
            stored = kwargs[name]
            if stored is None and secret.optional:
                continue
            if not is_sealed(stored):
                raise InvalidArguments(
                    f"{self.task_name}: secret argument {name!r} is stored unencrypted (a "
                    f"{type(stored).__name__}, not {{'$secret': token}}): enqueue the job with "
                    "task.enqueue(...), which encrypts it"
                )
            kwargs[name] = Secret(self._keys().open(self.task_name, name, stored))
        return kwargs
