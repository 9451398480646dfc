"""The ``sqljobs`` command (extra ``sqljobs[cli]``): run workers, see and steer the queue.

Every command finds the application's :class:`~sqljobs.JobQueue` from ``--app
module:attribute`` or ``$SQLJOBS_APP``::

    sqljobs worker myapp.jobs:jobs --concurrency 8      # until SIGTERM / Ctrl-C
    sqljobs status                                      # counts per queue and state
    sqljobs jobs list --state discarded --newer-than 1h
    sqljobs jobs show 42                                # args, attempts, errors, result
    sqljobs retry 42 / cancel 42 / prune --older-than 7d
    sqljobs enqueue myapp.tasks.refresh --args '{"record_id": 1}'

Output is a table for people and ``--json`` for scripts. Exit codes scripts can rely on:
0 success, 1 failure (e.g. the database is unreachable), 2 usage error (bad option, bad
JSON, ``--app`` that cannot be loaded), 3 no such job or task, 4 refused because of the
job's state (retrying a running job, cancelling a finished one). Errors go to stderr as
``error: <message>``.

``worker`` stops claiming on SIGTERM or Ctrl-C, lets running jobs finish within ``--grace``
seconds, and gives the rest back to the queue; a second Ctrl-C skips the wait. On a terminal
it shows a live summary (running, done, failed, rate); otherwise it prints a summary line every
``--summary-interval`` seconds.
"""

from __future__ import annotations

from ._app import _build_app, main
from ._loading import (
    APP_ENV,
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
    load_queue,
)
from ._run_worker import run_worker

__all__ = [
    "APP_ENV",
    "EXIT_ERROR",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "CliError",
    "_build_app",
    "load_queue",
    "main",
    "run_worker",
]
