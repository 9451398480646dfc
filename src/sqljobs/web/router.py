"""``sqljobs.fastapi.router(jobs, dependencies=[...])``: the REST API and the dashboard.

Example:
    >>> from fastapi import Depends, FastAPI
    >>> import sqljobs.fastapi
    >>> app = FastAPI()
    >>> app.include_router(
    ...     sqljobs.fastapi.router(jobs, dependencies=[Depends(require_admin)]),
    ...     prefix="/admin/jobs",
    ... )                                                                  # doctest: +SKIP

The dashboard is then at ``/admin/jobs/`` and the JSON API under ``/admin/jobs/api/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter

from ..exceptions import ConfigurationError
from ..jobqueue import JobQueue
from .api import build_api_router
from .dashboard import build_dashboard_router
from .graph_api import build_graph_api_router


def router(
    jobs: JobQueue,
    *,
    dependencies: Sequence[Any] | None = None,
    allow_unauthenticated: bool = False,
    read_only: bool = False,
    api: bool = True,
    dashboard: bool = True,
    csrf_secret: bytes | str | None = None,
    refresh_seconds: float = 3.0,
) -> APIRouter:
    """A FastAPI router with the JSON API (``/api/...``) and the dashboard (``/``).

    Args:
        jobs: the application's :class:`~sqljobs.JobQueue`.
        dependencies: FastAPI dependencies run before every route, e.g.
            ``[Depends(require_admin)]``. They are how the routes are protected: the router
            that can retry, cancel and delete jobs is refused without one.
        allow_unauthenticated: mount the mutating routes without any dependency anyway (for
            an app that protects the whole prefix another way, e.g. a middleware or a proxy).
        read_only: only the reading routes (no retry/cancel/delete, no buttons); allowed
            without a dependency.
        api: include the JSON API.
        dashboard: include the HTML dashboard.
        csrf_secret: key that signs the dashboard's CSRF cookie. The default is random per
            process, which is right for one process; give every process of a multi-process
            deployment the same secret so a form served by one is accepted by another.
        refresh_seconds: how often dashboard pages refresh their live part.

    Raises:
        ConfigurationError: mutating routes without a dependency and without
            ``allow_unauthenticated=True``.
    """
    if not isinstance(jobs, JobQueue):
        raise ConfigurationError(f"router() needs a sqljobs.JobQueue, not {type(jobs).__name__}")
    deps = list(dependencies or [])
    if not deps and not read_only and not allow_unauthenticated:
        raise ConfigurationError(
            "sqljobs.fastapi.router() can retry, cancel and delete jobs: protect it with an "
            "auth dependency, router(jobs, dependencies=[Depends(require_admin)]); or pass "
            "read_only=True for the reading routes only, or allow_unauthenticated=True if "
            "the mount point is protected another way"
        )
    if not api and not dashboard:
        raise ConfigurationError("router(): api=False and dashboard=False leave nothing to mount")
    if refresh_seconds <= 0:
        raise ConfigurationError("refresh_seconds must be positive")
    combined = APIRouter(dependencies=deps)
    if api:
        combined.include_router(build_api_router(jobs, read_only=read_only))
        combined.include_router(build_graph_api_router(jobs, read_only=read_only))
    if dashboard:
        combined.include_router(
            build_dashboard_router(
                jobs,
                read_only=read_only,
                csrf_secret=csrf_secret,
                refresh_seconds=refresh_seconds,
            )
        )
    return combined
