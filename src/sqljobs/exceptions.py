"""The exception tree of sqljobs.

Every error sqljobs raises derives from :class:`SqljobsError`. Errors that come from the
database are :class:`StoreError` and keep the SQLAlchemy error in ``__cause__``.
:class:`JobControl` subclasses are raised *inside* a task to steer the job; they are not
failures and are never logged as errors.
"""

from __future__ import annotations

import math
from datetime import timedelta


class SqljobsError(Exception):
    """An error in sqljobs."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or type(self).__name__).strip())


class ConfigurationError(SqljobsError):
    """sqljobs is configured in a way that cannot work."""


class TaskError(SqljobsError):
    """A problem with a task definition or lookup."""


class TaskNotRegistered(TaskError):
    """A job names a task that this process does not know."""


class TaskAlreadyRegistered(TaskError):
    """Two tasks were registered under the same name."""


class SerializationError(SqljobsError):
    """Job arguments cannot be stored as JSON."""


class InvalidArguments(SerializationError):
    """Job arguments do not match the task's signature."""


class ArgumentsDoNotFit(InvalidArguments):
    """Job arguments name a parameter the task does not have, or miss one it requires: at
    enqueue an error; read back by a worker, the job was likely enqueued by another version
    of the code (a rolling deploy), so it goes back to the queue for another worker."""


class SecretsErased(InvalidArguments):
    """The job's secret arguments were erased when it finished: it cannot run again."""


class SecretNotReadable(SqljobsError):
    """A stored secret argument cannot be decrypted with this process's ``secret_keys``."""


class StoreError(SqljobsError):
    """The job store failed to talk to the database."""


class JobNotFound(StoreError):
    """No job has this id."""


class OutcomeUnknown(StoreError):
    """The connection was lost after a write was sent and before the database answered: it
    may or may not have committed. sqljobs does not repeat such a write on its own, since
    repeating it could store it twice."""


class SchemaNotReady(StoreError):
    """The sqljobs tables are missing: call jobs.create_schema() or run your migrations."""


#: The longest delay Retry and Snooze accept (a year); longer is surely a unit mistake.
MAX_DELAY_SECONDS = 365 * 24 * 3600.0


def _check_delay(delay: timedelta | float, what: str) -> timedelta | float:
    """Refuse, at construction (so inside the task, as the attempt's error), a delay no
    scheduler can use: not a number, NaN, infinite, negative or beyond a year."""
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise ValueError(f"{what} delay is seconds or a timedelta, got {delay!r}")
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_DELAY_SECONDS:
        raise ValueError(
            f"{what} delay must be between 0 and {MAX_DELAY_SECONDS:.0f} seconds (a year), "
            f"got {delay!r}"
        )
    return delay


class JobControl(Exception):
    """Raised inside a task to steer its job instead of failing it."""


class Retry(JobControl):
    """Retry the job (after ``delay`` if given); this counts as an attempt."""

    def __init__(self, delay: timedelta | float | None = None, reason: str = "") -> None:
        super().__init__(reason or "retry requested by the task")
        self.delay = None if delay is None else _check_delay(delay, "Retry")
        self.reason = reason


class Snooze(JobControl):
    """Run the job again after ``delay`` without counting an attempt."""

    def __init__(self, delay: timedelta | float) -> None:
        super().__init__(f"snoozed for {delay}")
        self.delay = _check_delay(delay, "Snooze")


class Cancel(JobControl):
    """Stop the job for good: it ends ``cancelled`` and its session is rolled back."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason or "cancelled by the task")
        self.reason = reason


class UniqueKeyConflict(SqljobsError):
    """Retrying the job would make it a second live job with the same unique key; nothing was
    changed. ``holder`` is the id of the job that holds the key (None if unknown)."""

    def __init__(self, message: str, *, job_id: int, holder: int | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.holder = holder


class JobSessionMisused(SqljobsError):
    """A task committed or began the job's own session, which sqljobs commits with the job's
    completion (see docs/guarantees.md); the attempt is discarded, never retried."""


class JobTimeout(SqljobsError):
    """The task ran longer than its ``timeout``; its transaction was rolled back."""


class LeaseLost(SqljobsError):
    """The worker lost the job's lease (it expired and the job was rescued)."""


class GraphError(SqljobsError):
    """A job graph cannot be built or enqueued as given (the message says what to change)."""


class GraphNotFound(JobNotFound):
    """No job graph has this id (a :class:`JobNotFound`, so handlers of unknown ids catch
    it)."""


# -- durable steps (issue 14, item 1) -----------------------------------------------------------


class StepMisused(SqljobsError):
    """A step was called in a way that fails the same on every attempt (a name used twice in
    one job, a step inside a step, a step in a task that takes a session, steps run
    concurrently); the message says what to change. The job is discarded, never retried."""


class StepMismatch(StepMisused):
    """The job's code called its steps in another order than the run that stored them
    (non-deterministic task code, or a deploy that changed the task): replaying the stored
    results would hand them to the wrong calls. The job is discarded; see docs/workflows.md."""
