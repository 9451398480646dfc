"""One module per contender, each a :class:`~bench.contenders.base.Contender`."""

from __future__ import annotations

from collections.abc import Callable

from bench.contenders.base import Contender
from bench.settings import Settings


def registry() -> dict[str, Callable[[Settings], Contender]]:
    """Contender names -> factories (imports are lazy: a missing package fails one contender)."""

    def sqljobs(name: str, dialect: str, inproc: bool = False) -> Callable[[Settings], Contender]:
        def make(settings: Settings) -> Contender:
            from bench.contenders.sqljobs_ import SqljobsContender

            return SqljobsContender(settings, name=name, dialect=dialect, inproc=inproc)

        return make

    def lazy(module: str, cls: str) -> Callable[[Settings], Contender]:
        def make(settings: Settings) -> Contender:
            import importlib

            factory: Callable[[Settings], Contender] = getattr(
                importlib.import_module(f"bench.contenders.{module}"), cls
            )
            return factory(settings)

        return make

    return {
        "sqljobs-pg": sqljobs("sqljobs-pg", "postgresql"),
        "sqljobs-pg-inproc": sqljobs("sqljobs-pg-inproc", "postgresql", inproc=True),
        "sqljobs-mariadb": sqljobs("sqljobs-mariadb", "mariadb"),
        "sqljobs-sqlite": sqljobs("sqljobs-sqlite", "sqlite"),
        "naive-threads": lazy("naive", "NaiveThreads"),
        "background-tasks": lazy("background_tasks", "BackgroundTasksContender"),
        "procrastinate": lazy("procrastinate_", "ProcrastinateContender"),
        "pgqueuer": lazy("pgqueuer_", "PgQueuerContender"),
        "celery-redis": lazy("celery_", "CeleryContender"),
    }
