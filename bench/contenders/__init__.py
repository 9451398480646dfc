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

    def per_database(
        module: str, cls: str, name: str, dialect: str
    ) -> Callable[[Settings], Contender]:
        def make(settings: Settings) -> Contender:
            import importlib

            factory: Callable[..., Contender] = getattr(
                importlib.import_module(f"bench.contenders.{module}"), cls
            )
            return factory(settings, name=name, dialect=dialect)

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
        "naive-threads": per_database("naive", "NaiveThreads", "naive-threads", "postgresql"),
        "naive-threads-mariadb": per_database(
            "naive", "NaiveThreads", "naive-threads-mariadb", "mariadb"
        ),
        "naive-threads-sqlite": per_database(
            "naive", "NaiveThreads", "naive-threads-sqlite", "sqlite"
        ),
        "floor-pg": per_database("floor", "ThreadPoolFloor", "floor-pg", "postgresql"),
        "floor-mariadb": per_database("floor", "ThreadPoolFloor", "floor-mariadb", "mariadb"),
        "floor-sqlite": per_database("floor", "ThreadPoolFloor", "floor-sqlite", "sqlite"),
        "background-tasks": lazy("background_tasks", "BackgroundTasksContender"),
        "procrastinate": lazy("procrastinate_", "ProcrastinateContender"),
        "pgqueuer": lazy("pgqueuer_", "PgQueuerContender"),
        "celery-redis": lazy("celery_", "CeleryContender"),
    }
