"""Versioned SQL migrations: apply pending ones in order, go down to a target, report.

Files live in migrations/ as NNNN_name.up.sql and NNNN_name.down.sql. Each applied
version is recorded in schema_migrations with a checksum of both files; an applied
file that was edited afterwards is refused, naming the file. All work happens under a
named lock, so two migrators started together apply each version once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

from functions.migrate.fingerprint import MIGRATIONS_DIR
from functions.shared.db import named_lock
from functions.shared.errors import MigrationError

LOCK_NAME = "upsell_signals_schema_migrations"
LOCK_TIMEOUT_SECONDS = 120
FILE_PATTERN = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.(?P<direction>up|down)\.sql$")

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
class Migration:
    """One version: its up and down files."""

    version: int
    name: str
    up_path: Path
    down_path: Path

    @property
    def checksum(self) -> str:
        digest = hashlib.sha256()
        for path in (self.up_path, self.down_path):
            digest.update(path.name.encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
        return digest.hexdigest()


@dataclass(frozen=True)
class MigrationReport:
    """What a call did and where the schema stands afterwards."""

    action: str
    applied: list[int]
    reverted: list[int]
    current_version: int
    pending: list[int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "applied": self.applied,
            "reverted": self.reverted,
            "current_version": self.current_version,
            "pending": self.pending,
        }


def discover_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Read the migrations folder; every version needs both an up and a down file."""
    found: dict[int, dict[str, Path]] = {}
    names: dict[int, str] = {}
    for path in sorted(directory.glob("*.sql")):
        match = FILE_PATTERN.match(path.name)
        if not match:
            raise MigrationError(f"unexpected file in {directory}: {path.name} (want NNNN_name.up.sql / .down.sql)")
        version = int(match["version"])
        if names.setdefault(version, match["name"]) != match["name"]:
            raise MigrationError(f"two names for version {version}: {names[version]} and {match['name']}")
        found.setdefault(version, {})[match["direction"]] = path
    migrations = []
    for version in sorted(found):
        files = found[version]
        for direction in ("up", "down"):
            if direction not in files:
                raise MigrationError(f"version {version:04d} has no {direction} file")
        migrations.append(Migration(version, names[version], files["up"], files["down"]))
    return migrations


def split_statements(sql: str) -> list[str]:
    """Split a migration file on semicolons that end a line; comments are dropped."""
    without_comments = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [statement.strip() for statement in re.split(r";\s*$", without_comments, flags=re.M) if statement.strip()]


class Migrator:
    """Applies and reverts migrations on one connection."""

    def __init__(self, connection: pymysql.Connection[Any], migrations: list[Migration]) -> None:
        self._connection = connection
        self._migrations = migrations

    def _execute(self, sql: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
        with self._connection.cursor() as cursor:
            # No params means no %-interpolation: migration files may hold a literal '%' (host '%').
            cursor.execute(sql, params)
            rows = list(cursor.fetchall())
        self._connection.commit()
        return rows

    def _applied(self) -> dict[int, str]:
        self._execute(HISTORY_TABLE_DDL)
        return {
            int(version): str(checksum) for version, checksum in self._execute("SELECT version, checksum FROM schema_migrations")
        }

    def _verify(self, applied: dict[int, str]) -> None:
        """Refuse to go on when an applied version's files are gone or were edited."""
        by_version = {migration.version: migration for migration in self._migrations}
        for version, checksum in sorted(applied.items()):
            migration = by_version.get(version)
            if migration is None:
                raise MigrationError(f"version {version:04d} is applied but its files are missing from migrations/")
            if migration.checksum != checksum:
                raise MigrationError(
                    f"{migration.up_path.name} or {migration.down_path.name} was edited after version "
                    f"{version:04d} was applied (checksum differs); add a new version instead"
                )

    def _run_file(self, path: Path) -> None:
        for statement in split_statements(path.read_text()):
            self._execute(statement)

    def _report(self, action: str, applied_now: list[int], reverted_now: list[int]) -> MigrationReport:
        applied = self._applied()
        return MigrationReport(
            action=action,
            applied=applied_now,
            reverted=reverted_now,
            current_version=max(applied, default=0),
            pending=[m.version for m in self._migrations if m.version not in applied],
        )

    def status(self) -> MigrationReport:
        """Where the schema stands; verifies checksums but changes nothing."""
        with named_lock(self._connection, LOCK_NAME, LOCK_TIMEOUT_SECONDS):
            self._verify(self._applied())
            return self._report("status", [], [])

    def up(self) -> MigrationReport:
        """Apply every pending version in order."""
        applied_now: list[int] = []
        with named_lock(self._connection, LOCK_NAME, LOCK_TIMEOUT_SECONDS):
            applied = self._applied()
            self._verify(applied)
            for migration in self._migrations:
                if migration.version in applied:
                    continue
                self._run_file(migration.up_path)
                self._execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
                applied_now.append(migration.version)
            return self._report("up", applied_now, [])

    def provision_ingest_user(self, username: str, password: str) -> None:
        """Give the ingest account (made by a migration, locked) its password and unlock it."""
        with named_lock(self._connection, LOCK_NAME, LOCK_TIMEOUT_SECONDS):
            self._execute("ALTER USER %s@'%%' IDENTIFIED BY %s ACCOUNT UNLOCK", (username, password))

    def down(self, target: int) -> MigrationReport:
        """Revert applied versions above `target`, newest first (0 empties the schema)."""
        if target < 0:
            raise MigrationError(f"target version must be 0 or more, got {target}")
        reverted_now: list[int] = []
        with named_lock(self._connection, LOCK_NAME, LOCK_TIMEOUT_SECONDS):
            applied = self._applied()
            self._verify(applied)
            for migration in sorted(self._migrations, key=lambda m: m.version, reverse=True):
                if migration.version <= target or migration.version not in applied:
                    continue
                self._run_file(migration.down_path)
                self._execute("DELETE FROM schema_migrations WHERE version = %s", (migration.version,))
                reverted_now.append(migration.version)
            return self._report("down", [], reverted_now)
