"""sqljobs: durable background jobs for FastAPI + SQLAlchemy apps, in your own database.

Every job runs with its own Session, never the request's. See the README for a tour.
"""

from __future__ import annotations

from ._bulk_admin import BulkResult
from ._secrets import Secret
from .context import JobContext
from .exceptions import (
    Cancel,
    ConfigurationError,
    GraphError,
    GraphNotFound,
    InvalidArguments,
    JobNotFound,
    JobSessionMisused,
    OutcomeUnknown,
    Retry,
    SchemaNotReady,
    SecretNotReadable,
    SecretsErased,
    SerializationError,
    Snooze,
    SqljobsError,
    StoreError,
    TaskNotRegistered,
)
from .flow import Debounce, KeyLimit
from .graphs import Graph, GraphSnapshot, Node
from .job_logs import JobLogLine, LogLimits
from .jobqueue import DrainResult, JobQueue
from .jobs import Job, JobError, JobState
from .registry import Task
from .retry import Backoff
from .schema import metadata
from .unique import Unique
from .worker import Worker

__all__ = [
    "Backoff",
    "BulkResult",
    "Cancel",
    "ConfigurationError",
    "Debounce",
    "DrainResult",
    "Graph",
    "GraphError",
    "GraphNotFound",
    "GraphSnapshot",
    "InvalidArguments",
    "Job",
    "JobContext",
    "JobError",
    "JobLogLine",
    "JobNotFound",
    "JobQueue",
    "JobSessionMisused",
    "JobState",
    "KeyLimit",
    "LogLimits",
    "Node",
    "OutcomeUnknown",
    "Retry",
    "SchemaNotReady",
    "Secret",
    "SecretNotReadable",
    "SecretsErased",
    "SerializationError",
    "Snooze",
    "SqljobsError",
    "StoreError",
    "Task",
    "TaskNotRegistered",
    "Unique",
    "Worker",
    "metadata",
]

__version__ = "0.1.0"
