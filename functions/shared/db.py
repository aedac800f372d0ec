"""Connections to MariaDB: credentials, TLS, UTC sessions, guarded LOCAL INFILE (named locks: locks.py)."""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pymysql
import pymysql.connections
import pymysql.cursors
from pymysql.constants import COMMAND
from pymysql.protocol import LoadLocalPacketWrapper, MysqlPacket

from functions.shared.aws import secrets_provider
from functions.shared.errors import CredentialsRejected, InsecureConnection, LocalFileRefused, TransientError, translate_errors
from functions.shared.settings import DatabaseSettings

SECRET_CACHE_SECONDS = 300
ACCESS_DENIED = 1045
# While a secret rotates, the database may already hold the new password (the rotation's setSecret
# step) while AWSCURRENT still holds the old one (until finishSecret): AWSPENDING has the new one.
# Each round tries both stages, fetched afresh; the rounds wait 1, 2, 4 s between them.
ROTATION_ROUNDS = 4
ROTATION_BACKOFF_SECONDS = 1.0

logger = logging.getLogger("upsell_signals.db")

_answered = threading.local()


def answers_on_this_thread() -> int:
    """How many statements the database has answered on this thread's connections: it moves once the server is back."""
    return int(getattr(_answered, "count", 0))


class GuardedConnection(pymysql.Connection):  # type: ignore[type-arg]
    """A PyMySQL connection that sends, for LOAD DATA LOCAL, only the file it was offered.

    PyMySQL sends whatever file the server names in its LOCAL INFILE request; a rogue
    server (or a man in the middle, without TLS) could ask for /proc/self/environ. Here a
    request for anything but the file offered by `offering` closes the connection unsent.
    """

    _offered_file: bytes | None = None

    @contextmanager
    def waiting_longer(self, extra_seconds: int) -> Iterator[None]:
        """Wait `extra_seconds` beyond the read timeout for the answers of the block's statements.

        For a wait that the server itself bounds (GET_LOCK's timeout), on top of the time
        the statement needs.
        """
        usual = self._read_timeout  # type: ignore[has-type]
        if usual is not None:
            self._read_timeout = usual + extra_seconds
        try:
            yield
        finally:
            self._read_timeout = usual

    @contextmanager
    def offering(self, path: Path) -> Iterator[None]:
        """Let the server read `path` (the file the statement run in the block loads), and nothing else."""
        self._offered_file = os.fsencode(str(path))
        try:
            yield
        finally:
            self._offered_file = None

    def refuse_unless_offered(self, requested: bytes) -> None:
        """Close the connection, sending nothing, unless `requested` is the offered file."""
        if self._offered_file is not None and requested == self._offered_file:
            return
        # The server learns nothing, not even an empty file; the session is not to be trusted.
        self._force_close()  # type: ignore[attr-defined]
        raise LocalFileRefused(
            f"the database server asked for {os.fsdecode(requested)!r}, which this pass did not write "
            "or is not loading now: refused, connection closed"
        )

    # Both places where PyMySQL reads a query's answer (next_result goes through the first).
    def _read_query_result(self, unbuffered: bool = False) -> int:
        self._result = None
        result = _GuardedResult(self)
        if unbuffered:
            result.init_unbuffered_query()
        else:
            result.read()
        self._result = result
        if result.server_status is not None:
            self.server_status = result.server_status
        _answered.count = answers_on_this_thread() + 1
        return int(result.affected_rows or 0)

    def show_warnings(self) -> Any:
        self._execute_command(COMMAND.COM_QUERY, "SHOW WARNINGS")  # type: ignore[attr-defined]
        result = _GuardedResult(self)
        result.read()
        return result.rows


class _GuardedResult(pymysql.connections.MySQLResult):
    """A query's answer whose LOCAL INFILE request is checked against the offered file first."""

    def _read_load_local_packet(self, first_packet: MysqlPacket) -> None:
        connection = self.connection
        assert isinstance(connection, GuardedConnection)
        connection.refuse_unless_offered(LoadLocalPacketWrapper(first_packet).filename)
        super()._read_load_local_packet(first_packet)  # type: ignore[misc]


@contextmanager
def offering_local_file(connection: pymysql.Connection[Any], path: Path) -> Iterator[None]:
    """Let `connection` send `path` to a LOAD DATA LOCAL run in the block; only that file."""
    if not isinstance(connection, GuardedConnection):
        raise TypeError("LOAD DATA LOCAL needs a connection from functions.shared.db.connect")
    with connection.offering(path):
        yield


def is_loopback(host: str | None) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (no name is resolved: that would be traffic, and spoofable)."""
    if host is None or host.lower().rstrip(".") == "localhost":
        return True  # PyMySQL's default host
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _secret(settings: DatabaseSettings, *, stage: str = "AWSCURRENT", refresh: bool = False) -> dict[str, Any] | None:
    """The secret's JSON at `stage`; None when no version carries that stage (no rotation under way)."""
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    arn, provider = str(settings.secret_arn), secrets_provider()
    try:
        if stage == "AWSCURRENT":
            secret = provider.get(arn, transform="json", max_age=SECRET_CACHE_SECONDS, force_fetch=refresh)
        else:
            # Powertools caches by (name, transform), not by VersionStage (parameters/base.py,
            # _build_cache_key): max_age=0 keeps this version out of the cache, where it would
            # stand in for AWSCURRENT.
            secret = provider.get(arn, transform="json", max_age=0, force_fetch=True, VersionStage=stage)
    except GetParameterError as error:
        if stage != "AWSCURRENT" and "ResourceNotFoundException" in str(error):
            return None
        raise TransientError(f"read the database secret ({stage}): {error}") from error
    if not isinstance(secret, dict):
        raise TransientError("database secret is not a JSON object")
    return secret


def _credentials(settings: DatabaseSettings, *, stage: str = "AWSCURRENT", refresh: bool = False) -> dict[str, Any] | None:
    """Host, port, user, password and database, from the secret (at `stage`) when one is configured."""
    if settings.secret_arn:
        secret = _secret(settings, stage=stage, refresh=refresh)
        if secret is None:
            return None
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


def is_access_denied(error: pymysql.err.OperationalError) -> bool:
    return bool(error.args) and error.args[0] == ACCESS_DENIED


def connect_through_rotation(
    settings: DatabaseSettings,
    open_with: Callable[[dict[str, Any]], pymysql.Connection[Any]],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> pymysql.Connection[Any]:
    """After an access denied: the secret afresh at AWSCURRENT, then AWSPENDING, with backoff between rounds.

    A rotation is transient: CredentialsRejected (retryable) only once every round was refused.
    """
    refused: pymysql.err.OperationalError | None = None
    for round_number in range(ROTATION_ROUNDS):
        if round_number:
            sleep(ROTATION_BACKOFF_SECONDS * 2 ** (round_number - 1))
        for stage in ("AWSCURRENT", "AWSPENDING"):
            credentials = _credentials(settings, stage=stage, refresh=True)
            if credentials is None:
                continue
            try:
                connection = open_with(credentials)
            except pymysql.err.OperationalError as error:
                if not is_access_denied(error):
                    raise
                refused = error
                continue
            logger.warning("database password changed: connected with the secret's %s version", stage)
            return connection
    raise CredentialsRejected(
        f"connect to the database: access denied with the secret's AWSCURRENT and AWSPENDING versions, "
        f"{ROTATION_ROUNDS} rounds over {ROTATION_BACKOFF_SECONDS * (2 ** (ROTATION_ROUNDS - 1) - 1):.0f}s: {refused}. "
        "After a deploy that rolled back, invoke the migrate function with {\"action\": \"provision\"} (docs/deploy.md)"
    ) from refused


def _tls_context(settings: DatabaseSettings) -> ssl.SSLContext | None:
    if not settings.tls_ca_file:
        return None
    context = ssl.create_default_context(cafile=settings.tls_ca_file)
    context.check_hostname = True
    # Python 3.13 (Lambda's runtime) adds strict RFC 5280 checks to the defaults; the tests run 3.11, and
    # RDS does not say its chains pass them. The chain and the host name are verified either way, as in
    # the contexts PyMySQL builds itself (PyMySQL#1198 clears the same flag).
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
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

    `local_infile` only on the connection that stages: it may then send the files offered
    with `offering_local_file`, nothing else. Without DB_TLS_CA_FILE only a loopback host is
    reached; any other is refused (InsecureConnection) before a packet is sent.
    """
    idle_seconds = idle_timeout_seconds or settings.idle_timeout_seconds

    def open_with(credentials: dict[str, Any]) -> pymysql.Connection[Any]:
        if database is not None:
            credentials["database"] = database
        if not settings.tls_ca_file and not is_loopback(credentials["host"]):
            raise InsecureConnection(
                f"refusing to connect to {credentials['host']}:{credentials['port']} without verifying its certificate: "
                "set DB_TLS_CA_FILE to the CA bundle that signed it (only a loopback host may go without)"
            )
        return GuardedConnection(
            **credentials,
            charset="utf8mb4",
            autocommit=False,
            connect_timeout=settings.connect_timeout_seconds,
            # A half-open connection (a partition, a black-holing middlebox) fails here as a
            # lost connection (transient) instead of hanging until the function's timeout.
            read_timeout=settings.read_timeout_seconds,
            write_timeout=settings.write_timeout_seconds,
            local_infile=local_infile,
            ssl=_tls_context(settings),
            init_command=(
                f"SET time_zone = '+00:00', SESSION wait_timeout = {idle_seconds}, "
                f"SESSION net_read_timeout = {idle_seconds}, SESSION innodb_lock_wait_timeout = {idle_seconds}"
            ),
            cursorclass=pymysql.cursors.Cursor,
        )

    with translate_errors("connect to the database"):
        credentials = _credentials(settings)
        assert credentials is not None  # AWSCURRENT always exists
        try:
            return open_with(credentials)
        except pymysql.err.OperationalError as error:
            # During and after a rotation the cached secret holds the old password for a while.
            if not is_access_denied(error) or not settings.secret_arn:
                raise
        return connect_through_rotation(settings, open_with)


def fetch_dicts(connection: pymysql.Connection[Any], sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """The rows a statement returns, each as a dict by column name."""
    with connection.cursor(pymysql.cursors.DictCursor) as cursor:
        cursor.execute(sql, params)
        return [dict(row) for row in cursor.fetchall()]
