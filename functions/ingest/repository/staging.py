"""Staging: a date's partition, its pass's progress, its staged and rejected rows, and dropping them.

Partition DDL commits by itself, so creating a pass and dropping one take the date's
staging lock and never interleave; only the pass that owns a date's staging drops it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pymysql

from functions.ingest.columns import COLUMN_NAMES
from functions.ingest.repository.ledger import ClaimLedger
from functions.ingest.repository.names import (
    DUPLICATE_KEY,
    LOCK_WAIT_TIMEOUT,
    NO_PARTITION,
    STAGING_LOCK_TIMEOUT_SECONDS,
    partition_name,
    staging_lock,
)
from functions.ingest.repository.session import Session, raise_load_warnings
from functions.ingest.validation import SOURCE_ROW, RejectedRow
from functions.shared.errors import ClaimLost, PartitionWaitExceeded, translate_errors
from functions.shared.tables import METADATA, PROGRESS, REJECTED, STAGING

_COLUMNS = ", ".join(COLUMN_NAMES)
# Staging rows whose pass nobody holds any more (no live claim) and nobody touched for a while.
_ABANDONED = (
    f"LEFT JOIN {METADATA} m ON m.sync_date = p.sync_date "
    "WHERE {date_filter}p.updated_at < NOW() - INTERVAL %s DAY "
    "AND NOT (m.status <=> 'started' AND m.lease_expires_at > NOW())"
)


_ROWS_PER_LOOKUP = 10_000


class _RejectsCursor(pymysql.cursors.Cursor):
    """A cursor whose executemany never builds an INSERT over about 1 MB.

    PyMySQL starts a new multi-row statement before one would pass max_stmt_length, and
    validation caps each stored value at about 1 KiB (text_checks.capped_text), so one
    rejected row stays far below this and no statement nears max_allowed_packet (1 MiB at
    its lowest usual setting).
    """

    max_stmt_length = 1_000_000


@dataclass(frozen=True)
class StagingProgress:
    """How far a date's staging pass has got; committed with every chunk."""

    pass_number: int  # the claim number that started this staging pass; its rejected rows carry it
    rows_read: int
    rows_staged: int
    rows_rejected: int
    chunks_committed: int
    complete: bool
    compared_generation: int | None = None  # the table generation the file was compared at; None: not compared


class Staging:
    """SQL of upsell_signal_staging, its progress rows and the rejected rows."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def staging_progress(self, sync_date: dt.date, etag: str) -> StagingProgress | None:
        """The pass staged from this exact object, if one exists (resumable)."""
        row = self.session.fetch_one(
            "SELECT attempt, rows_read, rows_staged, rows_rejected, chunks_committed, staging_complete, compared_generation "
            f"FROM {PROGRESS} WHERE sync_date = %s AND s3_etag = %s",
            (sync_date, etag),
        )
        if row is None:
            return None
        generation = None if row[6] is None else int(row[6])
        return StagingProgress(int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]), bool(row[5]), generation)

    def record_compared(self, sync_date: dt.date, etag: str, generation: int) -> None:
        """Note the table generation this pass's staged rows were compared at."""
        self.session.execute(
            f"UPDATE {PROGRESS} SET compared_generation = %s WHERE sync_date = %s AND s3_etag = %s", (generation, sync_date, etag)
        )

    def record_rows_in_file(self, sync_date: dt.date, etag: str, rows_in_file: int) -> None:
        """Note how many rows the staged file holds, so that the status can show staging's progress against it."""
        self.session.execute(
            f"UPDATE {PROGRESS} SET rows_in_file = %s WHERE sync_date = %s AND s3_etag = %s",
            (rows_in_file, sync_date, etag),
        )

    def start_staging(
        self, sync_date: dt.date, etag: str, pass_number: int, holder_token: str, *, ddl_wait_seconds: int | None = None
    ) -> StagingProgress:
        """Begin a fresh pass for this object: empty partition, progress at row 0 (only while we hold the date).

        PartitionWaitExceeded when the partition's DDL waited `ddl_wait_seconds` for the staging table.
        """
        with self._staging_lock(sync_date, ddl_wait_seconds), translate_errors(f"prepare staging of {sync_date}"):
            self.session.connection.begin()
            # A stale holder must not drop the pass of the date's new one.
            ClaimLedger(self.session).check_holder(sync_date, holder_token)
            self.session.execute(f"DELETE FROM {PROGRESS} WHERE sync_date = %s", (sync_date,))
            self.session.connection.commit()
            self._drop_partition(sync_date)
            self._alter_partitions(
                sync_date, f"ADD PARTITION (PARTITION {partition_name(sync_date)} VALUES IN ('{sync_date.isoformat()}'))"
            )
            self.session.execute(
                f"INSERT INTO {PROGRESS} (sync_date, s3_etag, attempt) VALUES (%s, %s, %s)", (sync_date, etag, pass_number)
            )
            self.session.connection.commit()
        return StagingProgress(pass_number, 0, 0, 0, 0, False)

    # -- one chunk's rows ---------------------------------------------------------

    def load_staging_file(self, sync_date: dt.date, path: Path, expected_rows: int) -> None:
        """LOAD DATA LOCAL INFILE a file written by load_files.write_load_file into staging."""
        self.session.load_file(
            f"LOAD DATA LOCAL INFILE %s INTO TABLE {STAGING} CHARACTER SET utf8mb4 ({SOURCE_ROW}, {_COLUMNS}) SET sync_date = %s",
            path,
            (str(path), sync_date),
            expected_rows,
        )

    def insert_staging_rows(self, sync_date: dt.date, rows: pa.Table) -> None:
        """Multi-row INSERT of staged rows: the fallback where LOCAL INFILE is disabled."""
        try:
            self.session.insert_rows(STAGING, {"sync_date": sync_date}, (SOURCE_ROW, *COLUMN_NAMES), rows)
        except (pymysql.err.IntegrityError, pymysql.err.OperationalError) as error:
            if error.args[0] not in (NO_PARTITION, DUPLICATE_KEY):
                raise
            raise_load_warnings([(int(error.args[0]), str(error.args[1]))])

    def insert_rejected_rows(self, sync_date: dt.date, pass_number: int, rejected: Sequence[RejectedRow]) -> None:
        """Record rejected rows, in statements of bounded size (see _RejectsCursor)."""
        if not rejected:
            return
        with self.session.connection.cursor(_RejectsCursor) as cursor:
            cursor.executemany(
                f"INSERT INTO {REJECTED} "
                "(sync_date, attempt, source_row, cdms_canonical_company_id, reasons, original_values) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                [
                    (sync_date, pass_number, row.source_row, row.company_id, row.reasons, row.original_values_json)
                    for row in rejected
                ],
            )

    def advance_progress(self, sync_date: dt.date, etag: str, *, from_row: int, to_row: int, staged: int, rejected: int) -> None:
        """Record a committed chunk; refuses if another writer moved the pass meanwhile."""
        moved = self.session.execute(
            f"UPDATE {PROGRESS} SET rows_read = %s, rows_staged = rows_staged + %s, "
            "rows_rejected = rows_rejected + %s, chunks_committed = chunks_committed + 1 "
            "WHERE sync_date = %s AND s3_etag = %s AND rows_read = %s AND NOT staging_complete",
            (to_row, staged, rejected, sync_date, etag, from_row),
        )
        if moved != 1:
            raise ClaimLost(f"staging progress of {sync_date} moved under us (expected rows_read={from_row})")

    def finish_staging(self, sync_date: dt.date, etag: str, rows_read: int) -> None:
        """Mark the pass complete once every row of the file is staged or rejected."""
        if (
            self.session.execute(
                f"UPDATE {PROGRESS} SET staging_complete = TRUE WHERE sync_date = %s AND s3_etag = %s AND rows_read = %s",
                (sync_date, etag, rows_read),
            )
            != 1
        ):
            raise ClaimLost(f"staging progress of {sync_date} is not at row {rows_read}; another writer moved it")

    def count_staged(self, sync_date: dt.date, source_rows: Sequence[int]) -> int:
        """How many of `source_rows` this date's staging holds."""
        staged = 0
        for start in range(0, len(source_rows), _ROWS_PER_LOOKUP):
            rows = source_rows[start : start + _ROWS_PER_LOOKUP]
            found = self.session.fetch_one(
                f"SELECT COUNT(*) FROM {STAGING} WHERE sync_date = %s AND {SOURCE_ROW} IN ({', '.join(['%s'] * len(rows))})",
                (sync_date, *rows),
            )
            staged += int(found[0]) if found else 0
        return staged

    # -- clean-up -------------------------------------------------------------------

    def drop_pass(
        self, sync_date: dt.date, etag: str, pass_number: int, holder_token: str, *, ddl_wait_seconds: int | None = None
    ) -> bool:
        """Drop the date's staging if it still holds this pass and no other execution holds the date (DDL: commits).

        Another holder may be resuming this very pass (a real sync claiming the date just after
        a dry run's count): the pass is its own now. Its claim waits on the row lock taken here.
        PartitionWaitExceeded (the pass's progress gone, its partition left for the date's next
        pass to drop) when the DDL waited `ddl_wait_seconds` for the staging table.
        """
        with self._staging_lock(sync_date, ddl_wait_seconds), translate_errors(f"drop staging of {sync_date}"):
            self.session.connection.begin()
            held = self.session.fetch_one(
                f"SELECT status, holder_token FROM {METADATA} WHERE sync_date = %s FOR UPDATE", (sync_date,)
            )
            if held is not None and held[0] == "started" and held[1] != holder_token:
                self.session.connection.commit()
                return False
            # The progress row goes first: a partition left without one is dropped by the
            # next pass of the date, while a progress row without its rows would be resumed.
            owned = self.session.execute(
                f"DELETE FROM {PROGRESS} WHERE sync_date = %s AND s3_etag = %s AND attempt = %s",
                (sync_date, etag, pass_number),
            )
            self.session.connection.commit()
            if owned:
                self._drop_partition(sync_date)
        return owned == 1

    def drop_abandoned_staging(self, older_than_days: int, *, ddl_wait_seconds: int | None = None) -> list[dt.date]:
        """Drop staging nobody has touched for a while and no live claim holds; the dates dropped.

        PartitionWaitExceeded when a partition's DDL waited `ddl_wait_seconds` for the staging table.
        """
        dropped = []
        for sync_date in self._abandoned_staging_dates(older_than_days):
            with self._staging_lock(sync_date, ddl_wait_seconds), translate_errors(f"drop abandoned staging of {sync_date}"):
                # Asked again under the lock: a pass may have resumed since the list was read.
                if self.session.execute(
                    f"DELETE p FROM {PROGRESS} p " + _ABANDONED.format(date_filter="p.sync_date = %s AND "),
                    (sync_date, older_than_days),
                ):
                    self.session.connection.commit()
                    self._drop_partition(sync_date)
                    dropped.append(sync_date)
                else:
                    self.session.connection.commit()
        return dropped

    def _abandoned_staging_dates(self, older_than_days: int) -> list[dt.date]:
        with self.session.connection.cursor() as cursor:
            cursor.execute(f"SELECT p.sync_date FROM {PROGRESS} p " + _ABANDONED.format(date_filter=""), (older_than_days,))
            rows = [row[0] for row in cursor.fetchall()]
        self.session.connection.commit()
        return rows

    @contextmanager
    def _staging_lock(self, sync_date: dt.date, ddl_wait_seconds: int | None = None) -> Iterator[None]:
        """Serialise the DDL of one date's partition (creating a pass and dropping one never interleave), its wait bounded.

        The DDL waits for the staging table's metadata lock behind every open transaction that
        read the table (another date's publish) for `lock_wait_timeout`, a day by default, past
        Lambda's kill. An ALTER of a partition waits up to twice the setting (6.0 s at 3 on
        MariaDB 10.11), so half of `ddl_wait_seconds` is set; None keeps the server's.
        """
        with self.session.locked(staging_lock(sync_date), STAGING_LOCK_TIMEOUT_SECONDS, f"take the staging lock of {sync_date}"):
            if ddl_wait_seconds is None:
                yield
                return
            self.session.execute("SET SESSION lock_wait_timeout = %s", (max(1, ddl_wait_seconds // 2),))
            try:
                yield
            except PartitionWaitExceeded:
                self.session.execute("SET SESSION lock_wait_timeout = DEFAULT")
                raise
            self.session.execute("SET SESSION lock_wait_timeout = DEFAULT")

    def _alter_partitions(self, sync_date: dt.date, change: str) -> None:
        try:
            self.session.execute(f"ALTER TABLE {STAGING} {change}")
        except pymysql.err.OperationalError as error:
            if error.args[0] != LOCK_WAIT_TIMEOUT:
                raise
            raise PartitionWaitExceeded(
                f"staging of {sync_date}: ALTER TABLE … {change} waited its bound for the staging table, which another "
                "session's open transaction holds (another date's publish, or a reader's): nothing changed"
            ) from error

    def _partition_exists(self, sync_date: dt.date) -> bool:
        return (
            self.session.fetch_one(
                "SELECT 1 FROM information_schema.partitions WHERE table_schema = DATABASE() "
                "AND table_name = %s AND partition_name = %s",
                (STAGING, partition_name(sync_date)),
            )
            is not None
        )

    def _drop_partition(self, sync_date: dt.date) -> None:
        if self._partition_exists(sync_date):
            self._alter_partitions(sync_date, f"DROP PARTITION {partition_name(sync_date)}")
