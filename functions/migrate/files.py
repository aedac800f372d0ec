"""The migrations folder: NNNN_name.up.sql and NNNN_name.down.sql, read into versions and statements."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from functions.migrate.fingerprint import MIGRATIONS_DIR
from functions.shared.errors import MigrationError

FILE_PATTERN = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.(?P<direction>up|down)\.sql$")


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
