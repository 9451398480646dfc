"""The reference app: a record refreshed in the background with its own session, done right.

Run it with ``bash scripts/demo`` (SQLite), or ``uvicorn examples.records.app:app`` with
``DATABASE_URL`` set for PostgreSQL or MariaDB. See ``examples/records/README.md``.
"""
