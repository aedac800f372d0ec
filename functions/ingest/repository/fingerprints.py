"""The signals table's row fingerprints, computed by the server as it reads the table in id order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from functions.ingest.columns import KEY_COLUMN
from functions.ingest.repository.session import Session
from functions.ingest.row_fingerprints import FINGERPRINT_BYTES, fingerprint_sql
from functions.shared.tables import TARGET

# At most 12 MB a page (16 bytes of fingerprint and, for a delete, 8 of id a row): under the
# smallest usual max_allowed_packet (16 MB), which bounds a result.
PAGE_ROWS = 500_000
ID_BYTES = 8


class TableFingerprints:
    """What the table holds, 16 bytes a row, each with its row's id.

    The server computes each fingerprint from the row as it is now, so a row a person
    changed by hand differs from the file's as any other change does; nothing is kept
    between reads that a write outside the ingest could leave stale.
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    def estimated_rows(self) -> int:
        """The table's row count as the server estimates it (cheap; sizes the compare's partitions)."""
        row = self.session.fetch_one(
            "SELECT TABLE_ROWS FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = %s", (TARGET,)
        )
        return int(row[0] or 0) if row else 0

    def pages(self, *, with_ids: bool, page_rows: int = PAGE_ROWS) -> Iterator[tuple[bytes, bytes]]:
        """Every row's fingerprint, back to back, a page of rows at a time; with_ids: and each row's id (8 bytes, big-endian).

        Without ids the order of a page's fingerprints is the server's to choose (a set is
        what the compare needs); with them, each fingerprint travels with its id.
        """
        record_bytes = FINGERPRINT_BYTES + (ID_BYTES if with_ids else 0)
        self.session.execute("SET SESSION group_concat_max_len = %s", (page_rows * record_bytes,))
        record = f"CONCAT(fp, UNHEX(LPAD(HEX(id), {2 * ID_BYTES}, '0')))" if with_ids else "fp"
        after = 0
        while True:
            row = self.session.fetch_one(
                f"SELECT GROUP_CONCAT({record} SEPARATOR ''), COUNT(*), MAX(id) "
                f"FROM (SELECT id, {fingerprint_sql()} AS fp FROM {TARGET} WHERE id > %s ORDER BY id LIMIT %s) page",
                (after, page_rows),
            )
            count = int(row[1]) if row else 0
            if not count:
                return
            assert row is not None
            records = bytes(row[0])
            if len(records) != count * record_bytes:
                raise AssertionError(f"read {len(records)} bytes for {count} rows: group_concat_max_len cut them")
            if with_ids:
                yield _split(records, count)
            else:
                yield records, b""
            if count < page_rows:
                return
            after = int(row[2])

    def of_companies(self, company_ids: Sequence[str]) -> set[bytes]:
        """The fingerprints of these companies' rows (those the table has)."""
        if not company_ids:
            return set()
        marks = ", ".join(["%s"] * len(company_ids))
        rows = self.session.fetch_dicts(
            f"SELECT {fingerprint_sql()} AS fingerprint FROM {TARGET} WHERE {KEY_COLUMN} IN ({marks})", tuple(company_ids)
        )
        return {bytes(row["fingerprint"]) for row in rows}


def _split(records: bytes, count: int) -> tuple[bytes, bytes]:
    """Records of a fingerprint and an id each, as the fingerprints back to back and the ids back to back."""
    view = memoryview(records)
    width = FINGERPRINT_BYTES + ID_BYTES
    fingerprints = b"".join([view[start : start + FINGERPRINT_BYTES] for start in range(0, count * width, width)])
    ids = b"".join([view[start : start + ID_BYTES] for start in range(FINGERPRINT_BYTES, count * width, width)])
    return fingerprints, ids
