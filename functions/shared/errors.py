"""The failure vocabulary: every error the functions raise is transient or permanent.

Transient errors are worth retrying (in-process, then by Lambda); permanent ones are
not and go straight to the dead-letter queue. `translate_errors` is the one place
where driver and SDK exceptions become one of these.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql
from botocore.exceptions import ClientError, FlexibleChecksumError, HTTPClientError, IncompleteReadError
from botocore.exceptions import ConnectionError as BotoConnectionError

# MariaDB / client error codes that mean "try again": the server went away, the
# connection was killed (KILL CONNECTION gives 1927 or a lost connection), the server
# is shutting down, a lock wait timed out or a deadlock rolled us back.
TRANSIENT_MARIADB_CODES = frozenset({1040, 1053, 1205, 1213, 1927, 2002, 2003, 2006, 2013, 2055})
# Of those, the ones that say the server could not be reached or dropped the session (a restart, a failover).
UNREACHABLE_MARIADB_CODES = frozenset({1053, 1927, 2002, 2003, 2006, 2013, 2055})
# S3 answers that mean "slow down" or "our fault, try again".
TRANSIENT_S3_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "500",
        "502",
        "503",
        "504",
    }
)
MISSING_S3_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
# A statement over max_allowed_packet: the server's ER_NET_PACKET_TOO_LARGE, and the C
# client's CR_NET_PACKET_TOO_LARGE (PyMySQL defines it but sends whatever it is given; the
# server then refuses and drops the connection, which can reach us as 2006 instead).
# Sending the same statement again cannot pass, so these are never transient.
PACKET_TOO_LARGE_CODES = frozenset({1153, 2020})
# ER_OPTION_PREVENTS_STATEMENT, for --read-only: the endpoint still reaches a server that is no
# longer the writer (after an RDS blue/green switchover the old primary stays up, read-only) or
# one set read-only for a moment. The code also names other options, which would not pass; a
# replica given as the endpoint by mistake waits out the retries, then fails naming --read-only.
OPTION_PREVENTS_STATEMENT = 1290


class IngestError(Exception):
    """Base of every error the functions raise on purpose."""

    retryable = False


class TransientError(IngestError):
    """A fault that may pass: lost connection, lock timeout, deadlock, S3 throttling."""

    retryable = True


class DatabaseUnreachable(TransientError):
    """The server could not be reached, or dropped the session: a restart or failover, while it lasts."""


class CredentialsRejected(TransientError):
    """The database refused the secret's current and pending passwords (1045) through every retry of a rotation."""


class HandedOver(IngestError):
    """The sync stopped at a chunk boundary before the function's timeout; its next run resumes.

    Retryable, but not a TransientError: the in-process retry must not run it again, since
    the time is what ran out. The durable execution's next run (functions/ingest/continuation.py)
    continues the date; `stopped_at` says where, so a run that stops where the last one did is seen.
    """

    retryable = True

    def __init__(self, message: str, *, stopped_at: str = "") -> None:
        super().__init__(message)
        self.stopped_at = stopped_at or message


class PermanentError(IngestError):
    """A fault that retrying cannot fix: bad input, bad file, a tripped guard."""


def _recorded_as(name: str | None, kind: type[IngestError]) -> bool:
    found = globals().get(name or "")
    return isinstance(found, type) and issubclass(found, kind)


def is_permanent_error_name(name: str | None) -> bool:
    """Whether a recorded error type (its class name) is one of ours that retrying cannot fix."""
    return _recorded_as(name, PermanentError)


def is_transient_error_name(name: str | None) -> bool:
    """Whether a recorded error type (its class name) is one of ours that passes by itself (an outage, a lock)."""
    return _recorded_as(name, TransientError)


class NoProgress(PermanentError):
    """A file's continuation stopped: a run handed over where the one before it did, or the bound of runs ran out."""


class BadEvent(PermanentError):
    """The invocation's event is not one this function accepts."""


class SchemaError(PermanentError):
    """The Parquet file lacks a required column or has one of an unusable type."""


class CorruptFile(PermanentError):
    """The object is not readable Parquet (truncated, wrong format)."""


class MissingObject(PermanentError):
    """The S3 object the sync needs does not exist."""


class StaleObject(PermanentError):
    """The object changed (new ETag) while this attempt was reading it."""


class ClaimLost(PermanentError):
    """Another execution took the date over (a newer file, or our lease ran out); stop writing."""


class PublishTooLong(PermanentError):
    """The file's one-transaction publish would not finish within one run, however fresh: no retry can publish it."""


class NoSpace(PermanentError):
    """The work directory (Lambda's ephemeral storage) cannot hold what the sync must write."""


class InsecureConnection(PermanentError):
    """A database connection would go without a verified CA to a host that is not loopback."""


class LocalFileRefused(PermanentError):
    """The database server asked for a local file that this pass did not offer it."""


class MigrationError(PermanentError):
    """Migrations cannot be applied as asked (edited file, missing file, bad target)."""


class SchemaAhead(MigrationError):
    """The database has versions applied that are newer than any this code carries: newer code migrated it.

    So it meets code older than the schema: the code a failed deploy's rollback put back.
    """

    def __init__(self, versions: list[int], newest_known: int) -> None:
        super().__init__(
            f"the schema has version(s) {', '.join(f'{version:04d}' for version in versions)} applied, newer than "
            f"{newest_known:04d}, the newest this code carries (newer code migrated it)"
        )
        self.versions = versions


class MigrationWaitExceeded(TransientError):
    """A migration waited its bound for a lock (another migrator, a publish, a reader): nothing more was applied."""


class PartitionWaitExceeded(TransientError):
    """A staging partition's DDL waited its bound for the staging table (another date's open publish): nothing changed."""


class GuardTripped(PermanentError):
    """A kill switch refused the publish; `figures` says what it measured."""

    def __init__(self, guard: str, message: str, figures: dict[str, Any]) -> None:
        super().__init__(f"guard {guard} tripped: {message}")
        self.guard = guard
        self.figures = figures


def _mariadb_code(error: pymysql.err.MySQLError) -> int | None:
    code = error.args[0] if error.args else None
    return code if isinstance(code, int) else None


def _database_error(action: str, error: pymysql.err.MySQLError) -> IngestError:
    """The driver's error as this project's: permanent unless the code says it may pass."""
    code = _mariadb_code(error)
    if code in PACKET_TOO_LARGE_CODES:
        return PermanentError(f"{action}: a packet was too large for max_allowed_packet (database error {code}): {error}")
    if isinstance(getattr(error, "original_exception", None), ssl.SSLCertVerificationError):
        # PyMySQL reports a refused certificate as 2003 "Can't connect": waiting cannot mend it.
        return PermanentError(
            f"{action}: the database's TLS certificate was not verified with DB_TLS_CA_FILE "
            f"(an endpoint the certificate does not name, or a CA the bundle lacks): {error}"
        )
    if code in UNREACHABLE_MARIADB_CODES or isinstance(error, pymysql.err.InterfaceError):
        return DatabaseUnreachable(f"{action}: database error {code}: {error}")
    if code in TRANSIENT_MARIADB_CODES or (code == OPTION_PREVENTS_STATEMENT and "read-only" in str(error)):
        return TransientError(f"{action}: database error {code}: {error}")
    return PermanentError(f"{action}: database error {code}: {error}")


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Re-raise driver and SDK exceptions met while doing `action` as Transient/Permanent."""
    try:
        yield
    except IngestError:
        raise
    except pymysql.err.MySQLError as error:
        raise _database_error(action, error) from error
    except ClientError as error:
        response = error.response.get("Error", {})
        s3_code = str(response.get("Code", ""))
        status = str(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        if s3_code in MISSING_S3_CODES:
            raise MissingObject(f"{action}: {s3_code}") from error
        if s3_code in TRANSIENT_S3_CODES or status.startswith("5"):
            raise TransientError(f"{action}: S3 {s3_code or status}: {error}") from error
        raise PermanentError(f"{action}: S3 {s3_code or status}: {error}") from error
    except (BotoConnectionError, HTTPClientError) as error:
        # HTTPClientError covers a body cut mid-way: ResponseStreamingError, ReadTimeoutError.
        raise TransientError(f"{action}: AWS connection error: {error}") from error
    except (IncompleteReadError, FlexibleChecksumError) as error:
        # A body shorter than its Content-Length, or whose checksum S3 sent does not match:
        # a broken transfer of the same object (a replaced one answers IfMatch with 412).
        raise TransientError(f"{action}: broken transfer: {error}") from error
    except AttributeError as error:
        # PyMySQL's LOAD DATA LOCAL sends its closing packet in a `finally`: when the
        # connection died mid-file, that write meets the closed socket and an
        # AttributeError replaces the real error, a lost connection. Anything else is a bug.
        lost = error.__context__
        if isinstance(lost, pymysql.err.OperationalError) and _mariadb_code(lost) in TRANSIENT_MARIADB_CODES:
            raise TransientError(f"{action}: connection lost during LOAD DATA LOCAL: {lost}") from lost
        raise
