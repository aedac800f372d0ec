"""The migrations' fingerprint: one function for the stack (which sends it) and the migrate function (which checks it).

Stdlib only, so infra/ can import it without the runtime's packages.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def migrations_fingerprint(directory: Path = MIGRATIONS_DIR) -> str:
    """SHA-256 over the migration files' names and bytes: changes when any version is added or edited."""
    digest = hashlib.sha256()
    for path in sorted(directory.glob("*.sql")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
