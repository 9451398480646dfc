"""Alembic owns the sqljobs tables, as docs/alembic.md shows: autogenerate with the documented
env.py, upgrade, autogenerate again (no changes), downgrade. Generated migrations import only
the stable public names of ``sqljobs.schema``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect

import sqljobs
import sqljobs.schema
from sqljobs import JobQueue

ENV_PY = """
from alembic import context
from sqlalchemy import create_engine

import sqljobs

target_metadata = [sqljobs.metadata]


def render_item(type_, obj, autogen_context):
    if type_ == "type" and type(obj).__module__.startswith("sqljobs."):
        autogen_context.imports.add("import sqljobs.schema")
    return False


connectable = create_engine(context.config.get_main_option("sqlalchemy.url"))
with connectable.connect() as connection:
    context.configure(
        connection=connection, target_metadata=target_metadata, render_item=render_item
    )
    with context.begin_transaction():
        context.run_migrations()
connectable.dispose()
"""


@pytest.fixture
def alembic_config(tmp_path: Path, db_url: str, engine: Engine) -> Config:
    sqljobs.metadata.drop_all(engine)
    command.init(Config(str(tmp_path / "alembic.ini")), str(tmp_path / "migrations"))
    config = Config(str(tmp_path / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    (tmp_path / "migrations" / "env.py").write_text(ENV_PY)
    return config


def revision_text(config: Config, message: str) -> str:
    script = command.revision(config, message=message, autogenerate=True)
    assert script is not None and not isinstance(script, list)
    return Path(script.path).read_text()


def test_alembic_autogenerate_upgrade_and_downgrade_the_sqljobs_tables(
    alembic_config: Config, engine: Engine, session_factory: object
) -> None:
    first = revision_text(alembic_config, "sqljobs tables")
    assert "import sqljobs.schema" in first
    used = set(re.findall(r"sqljobs\.schema\.(\w+)", first))
    assert used == {"StoredJSON", "UTCDateTime"}
    assert used <= set(sqljobs.schema.__all__)

    command.upgrade(alembic_config, "head")
    tables = set(inspect(engine).get_table_names())
    assert {"sqljobs_jobs", "sqljobs_queues", "sqljobs_workers", "sqljobs_steps"} <= tables
    indexes = {ix["name"] for ix in inspect(engine).get_indexes("sqljobs_jobs")}
    assert "ix_sqljobs_jobs_claim" in indexes
    jobs = JobQueue(session_factory)  # type: ignore[arg-type]
    jobs.store.check_ready()

    @jobs.task
    def noop() -> None: ...

    assert jobs.get(noop.enqueue()).task == noop.name

    second = revision_text(alembic_config, "nothing changed")
    upgrade_body = second.split("def upgrade()")[1].split("def downgrade()")[0]
    assert "op." not in upgrade_body, second

    command.downgrade(alembic_config, "base")
    assert not {"sqljobs_jobs", "sqljobs_queues", "sqljobs_workers"} & set(
        inspect(engine).get_table_names()
    )
    jobs.close()
