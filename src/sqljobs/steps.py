"""Durable steps: the vocabulary shared by the task's context, the worker and the store.

A task runs named steps through its context (``ctx.step(name, func, **kwargs)``, or
``await ctx.astep(...)`` in an async task). Each step runs in a transaction and session of
its own; its result is stored in the same commit as its writes, and a retried job gets the
stored result back instead of running a completed step again. This module holds what the
layers agree on: the step's stored record (:class:`JobStep`), the rules for step names, how
a result goes to JSON and back (:class:`StepCodec`) and the runner's interface
(:class:`StepRunner`), implemented by ``sqljobs.worker._steps``. See docs/workflows.md.

Example:
    >>> codec = StepCodec.of(lambda: None)
    >>> codec.decode(codec.encode((1, "a")))
    [1, 'a']
"""

from __future__ import annotations

import enum
import inspect
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ._arguments import check_json, to_json_value
from ._conversions import Converter, converter_for
from .exceptions import SerializationError, StepMisused
from .jobs import JobError

#: Step names are stored in a 200-character column.
MAX_STEP_NAME = 200


class StepState(str, enum.Enum):
    """``running`` (started, not finished: it may still run, or its process died),
    ``completed`` (its result and writes committed: never run again) or ``failed`` (its last
    run raised; the job's retry runs it again)."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class JobStep:
    """One step of a job as stored: read them with ``jobs.steps(job_id)``."""

    name: str
    #: The step's place among the job's step calls (0, 1, ...), in its last run.
    position: int
    state: StepState
    #: How many times the step was started (a run cut short by a crash counts).
    attempts: int
    #: The stored result (JSON) of a completed step; None otherwise.
    result: Any
    #: The last run's error, if it raised (kept after a later run completed it).
    error: JobError | None
    started_at: datetime | None
    finished_at: datetime | None
    #: Seconds the last finished run took.
    duration: float | None


def check_step_name(name: object) -> str:
    """``name`` if it can name a step; else :class:`StepMisused` saying what to pass."""
    if not isinstance(name, str) or not name.strip():
        raise StepMisused(
            f"a step's name is a non-empty str, got {name!r}: name each step of a job "
            "(e.g. ctx.step('charge', charge_card, order_id=order_id))"
        )
    if len(name) > MAX_STEP_NAME:
        raise StepMisused(f"step names are at most {MAX_STEP_NAME} characters, got {len(name)}")
    try:
        check_json(name, "step name")
    except SerializationError as exc:
        raise StepMisused(str(exc)) from None
    return name


def takes_session(func: Callable[..., Any]) -> bool:
    """The step function declares a ``session`` parameter (it gets the step's session)."""
    try:
        return "session" in inspect.signature(func).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


@dataclass(frozen=True, slots=True)
class StepCodec:
    """A step's result to JSON and back by the argument rules: plain JSON as is (tuples
    become lists), and the rich types of ``sqljobs._conversions`` (UUID, datetime, Decimal,
    Enum, dataclasses and pydantic models) when the function's return annotation names one.
    The step returns the decoded stored value on every run, the first one included, so a
    replay gives the task exactly what the first run gave it."""

    converter: Converter | None

    @classmethod
    def of(cls, func: Callable[..., Any]) -> StepCodec:
        try:
            hints = typing.get_type_hints(func)
        except Exception:  # unresolvable annotations: plain JSON
            hints = {}
        return cls(converter_for(hints.get("return")))

    def encode(self, value: Any) -> Any:
        """The JSON to store; :class:`SerializationError` if the value breaks the rules."""
        try:
            if self.converter is not None and value is not None:
                value = self.converter.to_json(value)
            return to_json_value(value, "result")
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"result: {exc}") from None

    def decode(self, stored: Any) -> Any:
        if self.converter is None or stored is None:
            return stored
        return self.converter.from_json(stored)


class StepRunner(Protocol):
    """Runs the steps of one attempt (the worker gives one to each attempt's context)."""

    def run(self, name: str, func: Callable[..., Any], kwargs: dict[str, Any]) -> Any: ...

    async def run_async(
        self, name: str, func: Callable[..., Any], kwargs: dict[str, Any]
    ) -> Any: ...


#: The step running in this thread (or async task), if any.
_current_step: ContextVar[str | None] = ContextVar("sqljobs_current_step", default=None)


def current_step() -> str | None:
    """The name of the step running here, if any."""
    return _current_step.get()


@contextmanager
def running_step(name: str) -> Iterator[None]:
    token = _current_step.set(name)
    try:
        yield
    finally:
        _current_step.reset(token)
