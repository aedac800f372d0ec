"""The signals table's row fingerprints, computed by the server as it reads the table in id order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from functions.ingest.columns import KEY_COLUMN
from functions.ingest.repository.session import Session, SessionPinger
from functions.ingest.row_fingerprints import FINGERPRINT_BYTES, fingerprint_sql
from functions.shared.tables import TARGET

# At most 4 MB a page, fingerprints (16 bytes a row) and, for a delete, ids (8): under the
# smallest usual max_allowed_packet (16 MB), which bounds a result. The client holds a page
# at least twice over while it arrives (PyMySQL's packet and the values cut from it), beside
# the file's side of the compare, so a page's size is added to the compare's peak.
PAGE_BYTES = 4_000_000
ID_BYTES = 8


class TableFingerprints:
    """What the table holds, 16 bytes a row, each with its row's id.

    The server computes each fingerprint from the row as it is now, so a row a person
    changed by hand differs from the file's as any other change does; nothing is kept
    between reads that a write outside the ingest could leave stale.
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    def pinger(self) -> SessionPinger:
        """What keeps this session alive once its reading is done and it waits on the caller."""
        return SessionPinger(self.session)

    def estimated_rows(self) -> int:
        """The table's row count as the server estimates it (cheap; sizes the compare's partitions)."""
        row = self.session.fetch_one(
            "SELECT TABLE_ROWS FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = %s", (TARGET,)
        )
        return int(row[0] or 0) if row else 0

    def pages(self, *, with_ids: bool, page_rows: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Every row's fingerprint, back to back, a page of rows at a time; with_ids: and each row's id (8 bytes, big-endian).

        The order within a page is the server's (a set is what the compare needs); the
        two aggregates of one query take its rows in the same order, so the n-th id is the
        n-th fingerprint's row.
        """
        page_rows = page_rows or PAGE_BYTES // (FINGERPRINT_BYTES + (ID_BYTES if with_ids else 0))
        self.session.execute("SET SESSION group_concat_max_len = %s", (page_rows * FINGERPRINT_BYTES,))
        ids = f"GROUP_CONCAT(UNHEX(LPAD(HEX(id), {2 * ID_BYTES}, '0')) SEPARATOR '')" if with_ids else "''"
        after = 0
        while True:
            row = self.session.fetch_one(
                f"SELECT GROUP_CONCAT(fp SEPARATOR ''), {ids}, COUNT(*), MAX(id) "
                f"FROM (SELECT id, {fingerprint_sql()} AS fp FROM {TARGET} WHERE id > %s ORDER BY id LIMIT %s) page",
                (after, page_rows),
            )
            count = int(row[2]) if row else 0
            if not count:
                return
            assert row is not None
            fingerprints, row_ids = bytes(row[0]), bytes(row[1] or b"")
            if len(fingerprints) != count * FINGERPRINT_BYTES or len(row_ids) != (count * ID_BYTES if with_ids else 0):
                cut = f"read {len(fingerprints)} bytes of fingerprints and {len(row_ids)} of ids for {count} rows"
                raise AssertionError(f"{cut}: group_concat_max_len cut them")
            yield fingerprints, row_ids
            if count < page_rows:
                return
            after = int(row[3])

    def of_companies(self, company_ids: Sequence[str]) -> set[bytes]:
        """The fingerprints of these companies' rows (those the table has)."""
        if not company_ids:
            return set()
        marks = ", ".join(["%s"] * len(company_ids))
        rows = self.session.fetch_dicts(
            f"SELECT {fingerprint_sql()} AS fingerprint FROM {TARGET} WHERE {KEY_COLUMN} IN ({marks})", tuple(company_ids)
        )
        return {bytes(row["fingerprint"]) for row in rows}
