"""Connections to MariaDB: credentials, TLS, UTC sessions, named locks."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql
import pymysql.cursors

from functions.shared.errors import TransientError, translate_errors
from functions.shared.settings import DatabaseSettings

SECRET_CACHE_SECONDS = 300
ACCESS_DENIED = 1045


def _credentials(settings: DatabaseSettings, *, refresh: bool = False) -> dict[str, Any]:
    """Host, port, user, password and database, from the secret when one is configured."""
    if settings.secret_arn:
        # Imported here so local runs and tests never need Secrets Manager.
        from aws_lambda_powertools.utilities import parameters

        secret = parameters.get_secret(settings.secret_arn, transform="json", max_age=SECRET_CACHE_SECONDS, force_fetch=refresh)
        if not isinstance(secret, dict):
            raise TransientError("database secret is not a JSON object")
        return {
            "host": secret.get("host", settings.host),
            "port": int(secret.get("port", settings.port)),
            "user": secret["username"],
            "password": secret["password"],
            "database": secret.get("dbname", settings.name),
        }
    return {
        "host": settings.host,
        "port": settings.port,
        "user": settings.user,
        "password": settings.password or "",
        "database": settings.name,
    }


def _tls_context(settings: DatabaseSettings) -> ssl.SSLContext | None:
    if not settings.tls_ca_file:
        return None
    context = ssl.create_default_context(cafile=settings.tls_ca_file)
    context.check_hostname = True
    return context


def connect(
    settings: DatabaseSettings,
    *,
    local_infile: bool = False,
    database: str | None = None,
    idle_timeout_seconds: int | None = None,
) -> pymysql.Connection[Any]:
    """Open a connection whose session reads and writes TIMESTAMPs in UTC and cannot hang on.

    The server ends the session once it has been silent for the idle timeout (between
    statements, or mid-statement while reading from us), and a lock wait gives up after
    as long: a paused or partitioned holder releases its row locks and named locks by
    itself, well before its claim's lease runs out.
    """
    idle_seconds = idle_timeout_seconds or settings.idle_timeout_seconds

    def open_with(credentials: dict[str, Any]) -> pymysql.Connection[Any]:
        if database is not None:
            credentials["database"] = database
        return pymysql.connect(
            **credentials,
            charset="utf8mb4",
            autocommit=False,
            connect_timeout=settings.connect_timeout_seconds,
            local_infile=local_infile,
            ssl=_tls_context(settings),
            init_command=(
                f"SET time_zone = '+00:00', SESSION wait_timeout = {idle_seconds}, "
                f"SESSION net_read_timeout = {idle_seconds}, SESSION innodb_lock_wait_timeout = {idle_seconds}"
            ),
            cursorclass=pymysql.cursors.Cursor,
        )

    with translate_errors("connect to the database"):
        try:
            return open_with(_credentials(settings))
        except pymysql.err.OperationalError as error:
            # After a rotation the cached secret holds the old password for a while:
            # on "access denied", fetch the secret afresh once before giving up.
            if error.args[0] != ACCESS_DENIED or not settings.secret_arn:
                raise
            return open_with(_credentials(settings, refresh=True))


def get_lock(connection: pymysql.Connection[Any], name: str, timeout_seconds: int) -> bool:
    """MariaDB's GET_LOCK(name): True once held, False if still busy after the timeout.

    A session may take a lock it holds again; each take needs its own release.
    """
    with connection.cursor() as cursor:
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
