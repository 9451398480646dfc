"""How the three databases differ, as far as the tests see it: declared once, here.

A test that expects different behaviour on some database reads it from this table, by name:
``@pytest.mark.needs("listen_notify")`` runs it only where the capability holds, and
``has("concurrent_writers", dialect)`` guards an assertion that holds only there. A name
not declared here fails the test, so no difference slips in unannounced (River's driver
conformance suite works the same way). ``tests/unit/test_capabilities.py`` checks the table
against what the store itself detects (``sqljobs.store.support_for``).

A test restricted to some databases for another reason says why:
``@pytest.mark.dialects("sqlite", reason="...")``.
"""

from __future__ import annotations

from dataclasses import dataclass

DIALECTS = ("sqlite", "postgresql", "mariadb")


@dataclass(frozen=True)
class Capability:
    holds_on: frozenset[str]
    #: Why it does not hold elsewhere: the reason a test that needs it leaves them out.
    elsewhere: str


def _on(*dialects: str, elsewhere: str) -> Capability:
    return Capability(frozenset(dialects), elsewhere)


CAPABILITIES: dict[str, Capability] = {
    "concurrent_writers": _on(
        "postgresql",
        "mariadb",
        elsewhere="SQLite runs one writing transaction at a time (a job session holds the "
        "write lock while its task runs)",
    ),
    "network_connection": _on(
        "postgresql",
        "mariadb",
        elsewhere="SQLite is a file opened in this process: there is no server connection "
        "whose answer can be lost, that can be killed, or that a fork could share",
    ),
    "listen_notify": _on("postgresql", elsewhere="only PostgreSQL has LISTEN/NOTIFY"),
    "statement_timeout": _on(
        "postgresql", elsewhere="only PostgreSQL has a per-transaction statement_timeout"
    ),
    "server_checks_json": _on(
        "postgresql",
        "mariadb",
        elsewhere="SQLite keeps JSON as unchecked text, so any text can be stored in a JSON column",
    ),
    "stores_unchecked_json": _on(
        "sqlite",
        elsewhere="PostgreSQL and MariaDB refuse text that is not JSON in a JSON column",
    ),
    "row_locks_skip_locked": _on(
        "postgresql",
        "mariadb",
        elsewhere="SQLite locks the whole database, not rows: nothing to skip",
    ),
    "file_database": _on(
        "sqlite", elsewhere="PostgreSQL and MariaDB databases are not files next to the app"
    ),
}


def capability(name: str) -> Capability:
    try:
        return CAPABILITIES[name]
    except KeyError:
        raise AssertionError(
            f"capability {name!r} is not declared in tests/capabilities.py: declare how the "
            "databases differ there before a test relies on it"
        ) from None


def has(name: str, dialect: str) -> bool:
    """Whether ``dialect`` has capability ``name`` (which must be declared)."""
    assert dialect in DIALECTS, dialect
    return dialect in capability(name).holds_on
