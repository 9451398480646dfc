"""Finding the application's JobQueue, and turning errors into messages and exit codes."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from .._overview import ActionRefused
from .._utils import import_object
from ..exceptions import JobNotFound, SerializationError, SqljobsError, TaskNotRegistered
from ..jobqueue import JobQueue
from ..jobs import JobState

try:
    import typer
except ImportError:  # pragma: no cover - exercised only without the extra
    typer = None  # type: ignore[assignment]

APP_ENV = "SQLJOBS_APP"
APP_HELP = f"module:attribute of your JobQueue (default: ${APP_ENV})"
STATES = ", ".join(s.value for s in JobState)
AGES = "30s, 15m, 2h, 7d"
#: Exit codes scripts can rely on.
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_REFUSED = 0, 1, 2, 3, 4


class CliError(Exception):
    """A failure to report as ``error: message`` with an exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def load_queue(path: str | None) -> JobQueue:
    """Find the :class:`JobQueue` named by ``module:attribute`` (or ``$SQLJOBS_APP``)."""
    target = path or os.environ.get(APP_ENV)
    if not target:
        raise SqljobsError(
            f"say where your JobQueue is: pass --app module:attribute or set {APP_ENV}"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = import_object(target)
    except (ImportError, AttributeError, ValueError) as exc:
        raise SqljobsError(f"cannot import {target!r}: {exc}") from exc
    if not isinstance(obj, JobQueue):
        raise SqljobsError(f"{target!r} is a {type(obj).__name__}, not a sqljobs.JobQueue")
    return obj


def load_for_command(path: str | None) -> JobQueue:
    try:
        return load_queue(path)
    except SqljobsError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None


@contextmanager
def reporting() -> Iterator[None]:
    """Turn sqljobs errors into ``error: ...`` on stderr and the documented exit code."""
    try:
        yield
    except CliError as exc:
        fail(str(exc), exc.code)
    except JobNotFound as exc:
        fail(str(exc), EXIT_NOT_FOUND)
    except TaskNotRegistered as exc:
        fail(str(exc), EXIT_NOT_FOUND)
    except ActionRefused as exc:
        fail(str(exc), EXIT_REFUSED)
    except (SerializationError, ValueError) as exc:
        fail(str(exc), EXIT_USAGE)
    except SqljobsError as exc:
        fail(str(exc), EXIT_ERROR)


def fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(code)
