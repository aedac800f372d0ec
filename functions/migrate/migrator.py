"""Versioned SQL migrations: apply pending ones in order, go down to a target, report.

Files live in migrations/ as NNNN_name.up.sql and NNNN_name.down.sql. Each applied
version is recorded in schema_migrations with a checksum of both files; an applied
file that was edited afterwards is refused, naming the file. All work happens under a
named lock, so two migrators started together apply each version once; changes of the
schema also hold the ingest's publish lock, so a migration never meets a publish midway.

MariaDB DDL is not transactional: a kill between a version's statements and its record
leaves the DDL done and the version pending. Every file is therefore written to be run
again (IF NOT EXISTS / IF EXISTS), and tests/integration/test_migrations.py runs each up
and each down twice to hold every future version to that. Every wait is bounded
(functions/migrate/waits.py).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pymysql

from functions.migrate.files import Migration, split_statements
from functions.migrate.revisions import EQUIVALENT_EARLIER_CHECKSUMS
from functions.migrate.waits import MigrationWaits
from functions.shared.contract import PUBLISH_LOCK
from functions.shared.errors import MigrationError, MigrationWaitExceeded, SchemaAhead
from functions.shared.locks import get_lock, release_lock
from functions.shared.tables import TARGET

LOCK_NAME = "upsell_signals_schema_migrations"
PROVISION_WAIT_SECONDS = 5  # within the deadline's margin (waits.DEADLINE_MARGIN_SECONDS)
LOCK_WAIT_TIMEOUT, DEADLOCK = 1205, 1213  # a statement that waited its bound, or was chosen as a deadlock victim
NO_SUCH_ACCOUNT = 1396  # ER_CANNOT_USER: ALTER USER of an account that does not exist

logger = logging.getLogger("upsell_signals.migrate")

HISTORY_TABLE_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
  version INT UNSIGNED NOT NULL,
  name VARCHAR(255) NOT NULL,
  checksum CHAR(64) NOT NULL,
  applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""


@dataclass(frozen=True)
class MigrationReport:
    """What a call did and where the schema stands afterwards."""

    action: str
    applied: list[int]
    reverted: list[int]
    current_version: int
    pending: list[int]
    ahead_of_code: list[int] = field(default_factory=list)  # applied by newer code: this code has no files for them

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def server_and_database(connection: pymysql.Connection[Any]) -> tuple[str, int, str]:
    """The server a connection reached, by its own host name and port (not the name dialled), and its database."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@hostname, @@port, DATABASE()")
        hostname, port, database = cursor.fetchone()
    return str(hostname), int(port), str(database)


class Migrator:
    """Applies and reverts migrations on one connection, every wait bounded by `waits`."""

    def __init__(
        self,
        connection: pymysql.Connection[Any],
        migrations: list[Migration],
        waits: MigrationWaits | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._connection = connection
        self._migrations = migrations
        self._waits = waits or MigrationWaits()
        self._sleep = sleep

    def _execute(self, sql: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
        with self._connection.cursor() as cursor:
            # No params means no %-interpolation: migration files may hold a literal '%' (host '%').
            cursor.execute(sql, params)
            rows = list(cursor.fetchall())
        self._connection.commit()
        return rows

    def _bound_next_wait(self) -> int:
        """Cap the session's lock waits (metadata and row locks) for the next statement; the cap set."""
        seconds = self._waits.statement_wait()
        if seconds < 1:
            raise MigrationWaitExceeded(
                "the migration's time is up (its deadline precedes the function's timeout): the rest stays pending"
            )
        self._execute("SET SESSION lock_wait_timeout = %s, innodb_lock_wait_timeout = %s", (seconds, seconds))
        return seconds

    def _run_statement(self, statement: str, where: str) -> None:
        """Run one statement, retrying a lock wait that ran out (the files are safe to run again)."""
        attempts = self._waits.statement_attempts
        for attempt in range(1, attempts + 1):
            waited = self._bound_next_wait()
            try:
                self._execute(statement)
                return
            except pymysql.err.OperationalError as error:
                if error.args[0] not in (LOCK_WAIT_TIMEOUT, DEADLOCK):
                    raise
                backoff = self._waits.retry_backoff_seconds * attempt
                if attempt == attempts or self._waits.seconds_left() < backoff + 1:
                    raise MigrationWaitExceeded(
                        f"{where}: waited {waited}s for a lock {attempt} time(s) (another session holds the table, "
                        f"e.g. an open transaction of a reader): not run, the version stays pending ({error.args[1]})"
                    ) from error
                logger.warning("%s: lock wait of %ss ran out (try %s of %s); trying again", where, waited, attempt, attempts)
                self._sleep(backoff)

    @contextmanager
    def _holding(self, name: str, bound_seconds: int, holder: str) -> Iterator[None]:
        """Hold a named lock for the block, waiting at most its bound (cut to the time left)."""
        timeout = self._waits.lock_timeout(bound_seconds)
        if not get_lock(self._connection, name, timeout):
            raise MigrationWaitExceeded(f"{holder} held lock {name!r} for more than {timeout}s: nothing applied, try again")
        try:
            yield
        finally:
            release_lock(self._connection, name)

    @contextmanager
    def _changing_the_schema(self) -> Iterator[None]:
        """Exclude the ingest's publish (its named lock) while versions are applied or reverted."""
        with self._holding(PUBLISH_LOCK, self._waits.publish_lock_seconds, "a publish of the ingest"):
            yield

    def _migration_lock(self) -> contextlib.AbstractContextManager[None]:
        return self._holding(LOCK_NAME, self._waits.migration_lock_seconds, "another migration")

    def _applied(self) -> dict[int, str]:
        self._run_statement(HISTORY_TABLE_DDL, "create schema_migrations")
        return {
            int(version): str(checksum) for version, checksum in self._execute("SELECT version, checksum FROM schema_migrations")
        }

    def _verify(self, applied: dict[int, str]) -> None:
        """Refuse to go on when an applied version's files are gone or were edited; SchemaAhead when newer code migrated."""
        by_version = {migration.version: migration for migration in self._migrations}
        newest_known = max(by_version, default=0)
        for version, checksum in sorted(applied.items()):
            if version > newest_known:
                continue  # reported below, once the versions this code knows are checked
            migration = by_version.get(version)
            if migration is None:
                raise MigrationError(f"version {version:04d} is applied but its files are missing from migrations/")
            if checksum != migration.checksum and checksum not in EQUIVALENT_EARLIER_CHECKSUMS.get(version, ()):
                raise MigrationError(
                    f"{migration.up_path.name} or {migration.down_path.name} was edited after version "
                    f"{version:04d} was applied (checksum differs); add a new version instead"
                )
        ahead = sorted(version for version in applied if version > newest_known)
        if ahead:
            raise SchemaAhead(ahead, newest_known)

    def _run_file(self, path: Path) -> None:
        for number, statement in enumerate(split_statements(path.read_text()), start=1):
            self._run_statement(statement, f"{path.name}, statement {number}")

    def _report(self, action: str, applied_now: list[int], reverted_now: list[int]) -> MigrationReport:
        # A plain read of the history, not bounded by the deadline: what was done is reported, even past it.
        applied = {int(version) for version, _ in self._execute("SELECT version, checksum FROM schema_migrations")}
        return MigrationReport(
            action=action,
            applied=applied_now,
            reverted=reverted_now,
            current_version=max(applied, default=0),
            pending=[m.version for m in self._migrations if m.version not in applied],
        )

    def status(self) -> MigrationReport:
        """Where the schema stands; verifies checksums but changes nothing. A schema ahead of this code is reported."""
        with self._migration_lock():
            try:
                self._verify(self._applied())
            except SchemaAhead as ahead:
                logger.warning("%s", ahead)
                return replace(self._report("status", [], []), ahead_of_code=ahead.versions)
            return self._report("status", [], [])

    def up(self) -> MigrationReport:
        """Apply every pending version in order."""
        applied_now: list[int] = []
        with self._migration_lock():
            applied = self._applied()
            self._verify(applied)
            pending = [migration for migration in self._migrations if migration.version not in applied]
            if pending:
                with self._changing_the_schema():
                    for migration in pending:
                        self._run_file(migration.up_path)
                        self._execute(
                            "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                            (migration.version, migration.name, migration.checksum),
                        )
                        applied_now.append(migration.version)
            return self._report("up", applied_now, [])

    def provision_ingest_user(self, username: str, password: str, *, may_delete: bool = False) -> None:
        """Give the ingest account (made by a migration, locked) its password, unlock it, and let it
        delete signals rows only if it deletes missing rows (MISSING_ROWS=delete)."""
        with self._migration_lock():
            self._set_password_and_unlock(username, password)
            # Granted first so that the revoke always finds it (a revoke of a grant not held fails).
            self._execute(f"GRANT DELETE ON {TARGET} TO %s@'%%'", (username,))
            if not may_delete:
                self._execute(f"REVOKE DELETE ON {TARGET} FROM %s@'%%'", (username,))

    def provision_status_user(self, username: str, password: str) -> None:
        """Give the status account (made by a migration, locked, reading the ledger only) its password and unlock it."""
        with self._migration_lock():
            self._set_password_and_unlock(username, password)

    def server_and_database(self) -> tuple[str, int, str]:
        """The server (its own host name and port, whatever name reached it) and the database this connection uses."""
        return server_and_database(self._connection)

    def _set_password_and_unlock(self, username: str, password: str) -> None:
        # A short wait of its own, not the run's deadline: provisioning follows the versions, and
        # the deadline's margin before the function's timeout covers it.
        self._execute("SET SESSION lock_wait_timeout = %s", (PROVISION_WAIT_SECONDS,))
        try:
            self._execute("ALTER USER %s@'%%' IDENTIFIED BY %s ACCOUNT UNLOCK", (username, password))
        except pymysql.err.OperationalError as error:
            if error.args[0] != NO_SUCH_ACCOUNT:
                raise
            missing = f"the account {username!r} does not exist: its migration has not run ('up' creates it)"
            raise MigrationError(missing) from error

    def down(self, target: int) -> MigrationReport:
        """Revert applied versions above `target`, newest first (0 empties the schema)."""
        if target < 0:
            raise MigrationError(f"target version must be 0 or more, got {target}")
        reverted_now: list[int] = []
        with self._migration_lock():
            applied = self._applied()
            self._verify(applied)
            to_revert = [
                migration
                for migration in sorted(self._migrations, key=lambda m: m.version, reverse=True)
                if migration.version > target and migration.version in applied
            ]
            if to_revert:
                with self._changing_the_schema():
                    for migration in to_revert:
                        self._run_file(migration.down_path)
                        self._execute("DELETE FROM schema_migrations WHERE version = %s", (migration.version,))
                        reverted_now.append(migration.version)
            return self._report("down", [], reverted_now)
