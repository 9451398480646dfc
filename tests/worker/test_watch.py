"""AttemptWatch: an attempt is ended by its executor or by the watchdog, never both."""

from __future__ import annotations

from typing import Any, cast

from sqljobs.store import SessionConnection
from sqljobs.worker._watch import AttemptWatch


def connection() -> SessionConnection:
    return SessionConnection(pooled=cast(Any, None), raw=None, server_id=1)


def test_a_watchdog_that_comes_first_ends_the_connection_and_owns_the_outcome() -> None:
    watch, ended = AttemptWatch(), list[SessionConnection]()
    watch.attach(conn := connection())
    assert watch.end(ended.append, abandon=True)
    assert ended == [conn]
    assert watch.settle() is conn  # the executor closes the dead connection...
    assert watch.abandoned  # ...and ignores the task's outcome
    assert not watch.attach(connection())  # a later session may not start


def test_an_attempt_that_returned_first_is_never_ended() -> None:
    watch, ended = AttemptWatch(), list[SessionConnection]()
    watch.attach(connection())
    assert watch.settle() is None
    assert not watch.end(ended.append, abandon=True)
    assert ended == [] and not watch.ended and not watch.abandoned


def test_a_lost_lease_ends_the_connection_once_without_taking_the_outcome() -> None:
    watch, ended = AttemptWatch(), list[SessionConnection]()
    watch.attach(connection())
    assert watch.end(ended.append, abandon=False)
    assert watch.end(ended.append, abandon=True)  # then past its timeout as well
    assert len(ended) == 1 and watch.abandoned
