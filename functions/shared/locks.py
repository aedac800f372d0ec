"""MariaDB named locks (GET_LOCK): what serialises publishes, and migrations with them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql

from functions.shared.db import GuardedConnection
from functions.shared.errors import TransientError


def get_lock(connection: pymysql.Connection[Any], name: str, timeout_seconds: int) -> bool:
    """MariaDB's GET_LOCK(name): True once held, False if still busy after the timeout.

    A session may take a lock it holds again; each take needs its own release.
    """
    # The server answers only once the lock is taken or its timeout is over: that wait is
    # on top of the client's read timeout, which is sized for statements doing work.
    waiting: contextlib.AbstractContextManager[None] = (
        connection.waiting_longer(timeout_seconds) if isinstance(connection, GuardedConnection) else contextlib.nullcontext()
    )
    with waiting, connection.cursor() as cursor:
        cursor.execute("SELECT GET_LOCK(%s, %s)", (name, timeout_seconds))
        row = cursor.fetchone()
    return bool(row) and row[0] == 1


def release_lock(connection: pymysql.Connection[Any], name: str) -> None:
    """Release one take of a named lock; a lost connection has already released them all."""
    if connection.open:
        with connection.cursor() as cursor:
            cursor.execute("SELECT RELEASE_LOCK(%s)", (name,))


@contextmanager
def named_lock(connection: pymysql.Connection[Any], name: str, timeout_seconds: int) -> Iterator[None]:
    """Hold MariaDB's GET_LOCK(name) for the block; TransientError if it stays busy."""
    if not get_lock(connection, name, timeout_seconds):
        raise TransientError(f"lock {name!r} still held by another session after {timeout_seconds}s")
    try:
        yield
    finally:
        release_lock(connection, name)
