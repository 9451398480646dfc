"""Hook points an instrumentation (tracing: :mod:`sqljobs.otel`) plugs into, and the no-op
default.

Each :class:`~sqljobs.JobQueue` holds one :class:`Hooks`; its enqueue, its runner and its
steps call the hooks around the work they do, so that a tracer sees the enqueue (and may add
a trace context to the rows), each attempt (run with the attempt's span current) and each
durable step. Without an instrumentation every hook is a no-op. The layers below the
interfaces only know this vocabulary, never OpenTelemetry.

Example:
    >>> hooks = Hooks()
    >>> with hooks.current.attempt(job) as scope:            # doctest: +SKIP
    ...     scope.ended("completed", None, None)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from .job_logs import LogLimits
from .jobs import Job, JobError, NewJob


class AttemptScope(Protocol):
    """One running attempt as an instrumentation sees it."""

    def ended(self, outcome: str, error: JobError | None, exception: BaseException | None) -> None:
        """The attempt ended with ``outcome`` (``completed``, ``failed``, ``discarded``,
        ``cancelled``, ``snoozed``, ``lease_lost``), its recorded error and exception."""


class Instrumentation(Protocol):
    """What an instrumentation implements (all three are context managers)."""

    def publishing(self, rows: Sequence[NewJob]) -> AbstractContextManager[list[NewJob]]:
        """Around an enqueue: yields the rows to insert (with a trace context, say)."""

    def attempt(self, job: Job) -> AbstractContextManager[AttemptScope]:
        """Around one attempt of ``job``, in the thread that runs it."""

    def step(self, job: Job, name: str) -> AbstractContextManager[None]:
        """Around one run of the durable step ``name`` of ``job``."""


class _Ignored:
    def ended(self, outcome: str, error: JobError | None, exception: BaseException | None) -> None:
        return None


class NoInstrumentation:
    """Every hook does nothing (the default)."""

    @contextmanager
    def publishing(self, rows: Sequence[NewJob]) -> Iterator[list[NewJob]]:
        yield list(rows)

    @contextmanager
    def attempt(self, job: Job) -> Iterator[AttemptScope]:
        yield _Ignored()

    @contextmanager
    def step(self, job: Job, name: str) -> Iterator[None]:
        yield


class Hooks:
    """What a queue's parts consult around each enqueue, attempt and step: the
    instrumentation (replaced by ``sqljobs.otel.instrument``) and how much of an attempt's
    logging is kept (``JobQueue(job_logs=...)``, docs/logs.md; None keeps none)."""

    def __init__(self, log_limits: LogLimits | None = None) -> None:
        self.current: Instrumentation = NoInstrumentation()
        self.log_limits = log_limits

    def install(self, instrumentation: Instrumentation | None) -> None:
        """Use ``instrumentation`` from now on (None: back to no-op hooks)."""
        self.current = instrumentation if instrumentation is not None else NoInstrumentation()
