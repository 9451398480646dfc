"""Bring an existing install's tables up to this version: add the columns a newer sqljobs
declares that the database's tables lack (``create_all`` creates missing tables only).

Only additive, defaulted columns are added here (``ALTER TABLE ... ADD COLUMN``, which every
supported database runs without rewriting the rows' existing values); anything else is left
to the application's migrations (docs/alembic.md).
"""

from __future__ import annotations

from sqlalchemy import Column, Table, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateColumn

from ..exceptions import SchemaNotReady
from ..schema import metadata


def missing_columns(conn: Connection) -> list[tuple[Table, Column[object]]]:
    """The sqljobs columns whose table exists in the database without them."""
    inspector = inspect(conn)
    found: list[tuple[Table, Column[object]]] = []
    for table in metadata.sorted_tables:
        if not inspector.has_table(table.name, schema=table.schema):
            continue
        present = {c["name"] for c in inspector.get_columns(table.name, schema=table.schema)}
        found += [(table, column) for column in table.columns if column.name not in present]
    return found


def add_missing_columns(conn: Connection) -> list[str]:
    """Add each missing column (``table.column`` names returned). A NOT NULL column without
    a server default cannot be added to rows that exist: that raises :class:`SchemaNotReady`
    saying to migrate."""
    added = []
    for table, column in missing_columns(conn):
        if not column.nullable and column.server_default is None:
            raise SchemaNotReady(
                f"the column {table.name}.{column.name} is missing and cannot be added to "
                "existing rows without a default: run your migrations (alembic upgrade head)"
            )
        ddl = CreateColumn(column).compile(dialect=conn.dialect)
        conn.exec_driver_sql(
            f"ALTER TABLE {conn.dialect.identifier_preparer.format_table(table)} ADD COLUMN {ddl}"
        )
        added.append(f"{table.name}.{column.name}")
    return added


def add_missing_indexes(conn: Connection) -> list[str]:
    """Create the sqljobs indexes missing on tables that exist (``create_all`` creates a
    table's indexes only with the table); returns their names."""
    inspector = inspect(conn)
    added = []
    for table in metadata.sorted_tables:
        if not inspector.has_table(table.name, schema=table.schema):
            continue
        present = {i["name"] for i in inspector.get_indexes(table.name, schema=table.schema)}
        for index in table.indexes:
            if index.name is not None and index.name not in present:
                index.create(conn)
                added.append(str(index.name))
    return added
