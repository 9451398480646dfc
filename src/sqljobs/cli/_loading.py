"""Finding the application's JobQueue, and turning errors into messages and exit codes."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any, NoReturn

from .._overview import ActionRefused
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
    """Find the :class:`JobQueue` named by ``module:attribute`` (or ``$SQLJOBS_APP``); a bare
    ``module`` is fine when it holds exactly one JobQueue."""
    target = path or os.environ.get(APP_ENV)
    if not target:
        raise SqljobsError(
            f"say where your JobQueue is: pass --app module:attribute or set {APP_ENV}"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, sep, attribute = target.partition(":")
    if sep:
        obj = _attribute(_import(module_name, target), attribute, target)
    else:
        obj = _queue_in_module_or_attribute(target)
    if not isinstance(obj, JobQueue):
        raise SqljobsError(f"{target!r} is a {type(obj).__name__}, not a sqljobs.JobQueue")
    return obj


def _queue_in_module_or_attribute(target: str) -> Any:
    """``package.module`` holding one JobQueue, or else ``package.module.attribute``."""
    try:
        module = importlib.import_module(target)
    except ModuleNotFoundError as exc:
        parent, _, attribute = target.rpartition(".")
        if exc.name != target or not parent:
            raise _import_error(target, exc) from exc
        return _attribute(_import(parent, target), attribute, target)
    except Exception as exc:
        raise _import_error(target, exc) from exc
    found = {name: obj for name, obj in vars(module).items() if isinstance(obj, JobQueue)}
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        raise SqljobsError(
            f"module {target!r} holds no sqljobs.JobQueue; pass module:attribute, "
            f"e.g. {target}:jobs"
        )
    names = ", ".join(f"{target}:{name}" for name in sorted(found))
    raise SqljobsError(f"module {target!r} holds several JobQueues; pass one of {names}")


def _import(module_name: str, target: str) -> ModuleType:
    if not module_name:
        raise SqljobsError(f"expected module:attribute, got {target!r}")
    try:
        return importlib.import_module(module_name)
    except Exception as exc:
        raise _import_error(module_name, exc) from exc


def _attribute(module: ModuleType, attribute: str, target: str) -> Any:
    obj: Any = module
    try:
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        queues = sorted(n for n, o in vars(module).items() if isinstance(o, JobQueue))
        hint = f"; it has {', '.join(queues)}" if queues else ""
        raise SqljobsError(
            f"cannot import {target!r}: module {module.__name__!r} has no attribute "
            f"{attribute!r}{hint}"
        ) from None
    return obj


def _import_error(module_name: str, exc: BaseException) -> SqljobsError:
    """A short message for a failed import: a module that cannot be found (say where we
    looked), or the user's module raising while it is imported (say what and where)."""
    if isinstance(exc, ModuleNotFoundError) and exc.name and module_name.startswith(exc.name):
        return SqljobsError(
            f"cannot import {module_name!r}: no module named {exc.name!r} in {os.getcwd()} "
            "or on sys.path; run the command from the directory that contains it, or add "
            "that directory to PYTHONPATH"
        )
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        where = f" at {last.filename}:{last.lineno}"
    return SqljobsError(
        f"importing {module_name!r} raised {type(exc).__name__}: {exc}{where}; fix the "
        "module (run `python -c 'import " + module_name + "'` to see the whole traceback)"
    )


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
