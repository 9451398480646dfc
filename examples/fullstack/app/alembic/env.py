"""Alembic owns every table: the app's (SQLModel.metadata) and sqljobs' (sqljobs.metadata),
as docs/alembic.md shows."""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any

from alembic import context
from examples.fullstack.app import models  # noqa: F401  (registers the app's tables)
from examples.fullstack.app.core.config import settings
from sqlalchemy import create_engine, pool
from sqlmodel import SQLModel

import sqljobs

config = context.config
if config.config_file_name is not None:
    # Keep the loggers the app (or pytest) already has.
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = [SQLModel.metadata, sqljobs.metadata]


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # sqljobs' columns use its own types (UTCDateTime, StoredJSON): import them in
    # generated migrations.
    if type_ == "type" and type(obj).__module__.startswith("sqljobs."):
        autogen_context.imports.add("import sqljobs.schema")
    return False  # render as usual


def run_migrations_offline() -> None:
    context.configure(
        url=settings.DATABASE_URL,
        target_metadata=target_metadata,
        render_item=render_item,
        literal_binds=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = create_engine(settings.DATABASE_URL, poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_item=render_item,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    connectable.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
