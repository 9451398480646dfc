"""Secret job arguments: the :class:`Secret` wrapper a task receives, and the stored form.

A parameter annotated ``Secret[str]`` (or ``Secret[Any]``, any JSON value; ``| None``
allowed) is stored as ``{"$secret": "<Fernet token>"}``; the keyring (``_keyring.py``)
seals and opens it. When the job finishes the token is replaced by ``{"$secret": null}``.
These helpers read the stored form only, so the store, the dashboard and the CLI erase and
redact secrets without the task, the registry or the keys.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: The key of the one-key object that stands for a secret in stored arguments.
MARKER = "$secret"
#: What the dashboard, the REST API and the CLI show instead of a sealed secret.
REDACTED = "<secret>"
#: ... and instead of one erased when its job finished.
REDACTED_ERASED = "<secret erased>"
_HIDDEN = "**********"


class Secret(Generic[T]):
    """A value that is never shown: ``repr`` and ``str`` are ``Secret('**********')`` and
    ``**********``, so tracebacks, logs and f-strings do not leak it.

    Annotate a task parameter ``Secret[str]`` and its value is encrypted in the job row and
    erased when the job finishes; the task reads it with :meth:`get_secret_value`.

    Example:
        >>> @jobs.task                                                    # doctest: +SKIP
        ... def create_account(email: str, password: Secret[str]) -> None:
        ...     auth.create(email, password.get_secret_value())
        >>> create_account.enqueue(email="a@example.com", password="hunter2")  # doctest: +SKIP
    """

    __slots__ = ("_secret_value",)

    def __init__(self, value: T) -> None:
        self._secret_value = value

    def get_secret_value(self) -> T:
        return self._secret_value

    def __repr__(self) -> str:
        return f"Secret('{_HIDDEN}')"

    def __str__(self) -> str:
        return _HIDDEN

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._secret_value == self._secret_value

    def __hash__(self) -> int:
        return hash(self._secret_value)

    def __reduce__(self) -> Any:
        raise TypeError("a Secret is not pickled: pass it as a Secret[...] job argument")


@dataclass(frozen=True, slots=True)
class SecretParameter:
    """A parameter annotated ``Secret[X]`` (``inner`` is X, or Any for a bare ``Secret``)."""

    inner: Any
    optional: bool


def secret_parameter(annotation: Any) -> SecretParameter | None:
    """How ``annotation`` marks a secret parameter, or None when it does not."""
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) != 1 or len(members) == len(typing.get_args(annotation)):
            return None
        annotation, optional = members[0], True
        origin = typing.get_origin(annotation)
    if annotation is Secret:
        return SecretParameter(inner=Any, optional=optional)
    if origin is Secret:
        (inner,) = typing.get_args(annotation)
        return SecretParameter(inner=inner, optional=optional)
    return None


def is_sealed(value: Any) -> bool:
    """``value`` is the stored form of a secret (sealed or erased)."""
    return type(value) is dict and len(value) == 1 and MARKER in value


def has_secrets(args: Any) -> bool:
    """``args`` (stored arguments) hold a secret still sealed (not yet erased)."""
    return isinstance(args, Mapping) and any(
        is_sealed(value) and value[MARKER] is not None for value in args.values()
    )


def erased_names(args: Any) -> list[str]:
    """The arguments whose secret was erased."""
    if not isinstance(args, Mapping):
        return []
    return [name for name, value in args.items() if is_sealed(value) and value[MARKER] is None]


def erased(args: dict[str, Any]) -> dict[str, Any]:
    """``args`` with every secret's token replaced by the erased marker."""
    return {name: {MARKER: None} if is_sealed(value) else value for name, value in args.items()}


def redacted(args: Any) -> Any:
    """``args`` as shown to people: each secret replaced by ``"<secret>"`` (or
    ``"<secret erased>"``)."""
    if not isinstance(args, Mapping) or not any(is_sealed(v) for v in args.values()):
        return args
    return {
        name: (REDACTED if value[MARKER] is not None else REDACTED_ERASED)
        if is_sealed(value)
        else value
        for name, value in args.items()
    }
