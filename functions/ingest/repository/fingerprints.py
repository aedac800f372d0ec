"""The signals table's row fingerprints, read page by page from their index as one compact blob each."""

from __future__ import annotations

from collections.abc import Iterator

from functions.ingest.repository.session import Session
from functions.ingest.row_fingerprints import FINGERPRINT_BYTES, FINGERPRINT_COLUMN
from functions.shared.tables import TARGET

# 8 MB a page: under the smallest usual max_allowed_packet (16 MB), which bounds a result.
PAGE_ROWS = 500_000


class TableFingerprints:
    """Reads of idx_row_fingerprint (migrations/0013): what the table holds, 16 bytes a row."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def estimated_rows(self) -> int:
        """The table's row count as the server estimates it (cheap; sizes the compare's partitions)."""
        row = self.session.fetch_one(
            "SELECT TABLE_ROWS FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = %s", (TARGET,)
        )
        return int(row[0] or 0) if row else 0

    def between(self, low: bytes, high: bytes | None, page_rows: int = PAGE_ROWS) -> Iterator[bytes]:
        """The fingerprints from `low` up to (not including) `high` (None: the last), back to back, a page at a time.

        Fingerprints are unique (each covers its row's key), so a page resumes after the last one read.
        """
        self.session.execute("SET SESSION group_concat_max_len = %s", (page_rows * FINGERPRINT_BYTES,))
        bound = f"AND {FINGERPRINT_COLUMN} < %s " if high is not None else ""
        after, comparison = low, ">="
        while True:
            row = self.session.fetch_one(
                f"SELECT GROUP_CONCAT(fp SEPARATOR ''), COUNT(*), MAX(fp) FROM (SELECT {FINGERPRINT_COLUMN} AS fp "
                f"FROM {TARGET} FORCE INDEX (idx_row_fingerprint) WHERE {FINGERPRINT_COLUMN} {comparison} %s {bound}"
                f"ORDER BY {FINGERPRINT_COLUMN} LIMIT %s) page",
                (after, high, page_rows) if high is not None else (after, page_rows),
            )
            count = int(row[1]) if row else 0
            if not count:
                return
            assert row is not None
            blob = bytes(row[0])
            if len(blob) != count * FINGERPRINT_BYTES:
                raise AssertionError(f"read {len(blob)} bytes of fingerprints for {count} rows: group_concat_max_len cut them")
            yield blob
            if count < page_rows:
                return
            after, comparison = bytes(row[2]), ">"
