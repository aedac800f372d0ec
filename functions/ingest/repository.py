"""Every SQL statement of the ingest, parameterised; knows nothing of Parquet or Lambda.

Methods do not commit: the service decides the unit of work with `transaction()`.
Identifiers that are not parameters (column names, the partition name) come from our
own constants or from a validated date, never from input.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pymysql
from pymysql.constants import SERVER_STATUS

from functions.ingest.claim_rules import LEASE_LIVE, ROW_LOCKED, ClaimOutcome, ClaimRequest, decide_claim
from functions.ingest.columns import COLUMN_NAMES, KEY_COLUMN
from functions.ingest.insert_statements import insert_statements
from functions.ingest.validation import SOURCE_ROW, RejectedRow
from functions.shared.db import get_lock, named_lock, offering_local_file
from functions.shared.errors import ClaimLost, PermanentError, TransientError, translate_errors

TARGET = "company_upsell_signals"
STAGING = "upsell_signal_staging"
PUBLISH_LOCK = "company_upsell_signals_publish"
LOCK_WAIT_TIMEOUT = 1205  # also what FOR UPDATE NOWAIT answers on a locked row
DUPLICATE_KEY = 1062
NO_PARTITION = 1526  # a row for a partition that does not exist
STAGING_LOCK_TIMEOUT_SECONDS = 60
CHANGES = "publish_changes"  # temporary: the staged rows a publish will insert or update
# From this share of changed rows on, an update is driven from the signals table (one
# scan in id order) rather than from the list of changes (which MariaDB buffers). At 1M
# rows, 10% changed took 2.7 s from the list and 3.3 s from the table; 99% changed took
# 16.4 s from the list and 13.7 s from the table (measured with the list in InnoDB, before
# it moved to MEMORY). The switch sits between the two.
DRIVE_UPDATE_FROM_TABLE_SHARE = 0.25
# The list lives in a MEMORY table, in the server's RAM: no pages to write and flush, so
# listing a million rows took about 1.5 s less than in an InnoDB temporary table, and
# the update's lookups into it were cheaper too. A listed row costs 48 to 64 bytes there
# (measured); its size cap is set from the staged rows. Past a few million rows the list
# goes to InnoDB instead, so that a huge file cannot take hundreds of MB of server memory.
PLAN_IN_MEMORY_MAX_ROWS = 4_000_000
PLAN_MEMORY_BYTES_PER_ROW = 96
PLAN_MEMORY_MIN_BYTES = 16 << 20

_COLUMNS = ", ".join(COLUMN_NAMES)
_STAGED_COLUMNS = ", ".join(f"s.{name}" for name in COLUMN_NAMES)
_DATA_COLUMNS = [name for name in COLUMN_NAMES if name != KEY_COLUMN]
# NULL-safe equality of every data column: a row is unchanged only when all match.
_ROW_UNCHANGED = " AND ".join(f"t.{name} <=> s.{name}" for name in _DATA_COLUMNS)
# Keys of a pass's rejected rows that could name a company (the column keeps up to 255
# characters as found; the signals table's keys are exact binary strings of at most 64).
_REJECTED_KEYS = (
    "SELECT cdms_canonical_company_id COLLATE utf8mb4_nopad_bin AS cdms_canonical_company_id "
    "FROM upsell_signal_rejected_rows WHERE sync_date = %s AND attempt = %s "
    "AND cdms_canonical_company_id IS NOT NULL AND CHAR_LENGTH(cdms_canonical_company_id) <= 64"
)
_SET_FROM_STAGING = ", ".join(f"t.{name} = s.{name}" for name in _DATA_COLUMNS)

class _RejectsCursor(pymysql.cursors.Cursor):
    """A cursor whose executemany never builds an INSERT over about 1 MB.

    PyMySQL starts a new multi-row statement before one would pass max_stmt_length, and
    validation caps each stored value at about 1 KiB, so one rejected row stays far below
    this and no statement nears max_allowed_packet (1 MiB at its lowest usual setting).
    """

    max_stmt_length = 1_000_000


@dataclass(frozen=True)
class StagingProgress:
    """How far a date's staging pass has got; committed with every chunk."""

    attempt: int
    rows_read: int
    rows_staged: int
    rows_rejected: int
    chunks_committed: int
    complete: bool


@dataclass(frozen=True)
class PublishPlan:
    """Exact counts of what a publish will do, computed before it writes."""

    rows_staged: int
    rows_to_insert: int
    rows_to_update: int
    rows_to_delete: int
    table_rows: int  # counted only when deleting
    into_empty_table: bool = False

    @property
    def rows_unchanged(self) -> int:
        return self.rows_staged - self.rows_to_insert - self.rows_to_update


@dataclass(frozen=True)
class CompletedSync:
    """A completed date, for the row-count and stale-date guards."""

    sync_date: dt.date
    rows_loaded: int


def _raise_load_warnings(warnings: list[tuple[int, str]]) -> None:
    """Name what LOAD DATA LOCAL turned into warnings: a lost partition or a second writer are not validation gaps."""
    text = "; ".join(f"{code} {message}" for code, message in warnings)
    codes = {code for code, _ in warnings}
    if NO_PARTITION in codes:
        raise TransientError(f"the date's staging partition is gone (another execution took the date over?): {text}")
    if DUPLICATE_KEY in codes:
        raise TransientError(f"rows already staged by another writer (another execution staging the date?): {text}")
    raise PermanentError(f"load changed values (a validation gap): {text}")


def partition_name(sync_date: dt.date) -> str:
    return f"p{sync_date:%Y%m%d}"


class SignalsRepository:
    """SQL for claims, staging, publishing and the run ledger, on one connection."""

    def __init__(self, connection: pymysql.Connection[Any]) -> None:
        self.connection = connection

    # -- plumbing ---------------------------------------------------------------

    @contextmanager
    def transaction(self, action: str, *, read_committed: bool = False) -> Iterator[None]:
        """Commit the block's statements together, or roll them back; errors translated.

        `read_committed` reads without locking rows (the session's default is REPEATABLE
        READ, under which INSERT ... SELECT locks every row it reads) for this one block.
        """
        with translate_errors(action):
            try:
                if read_committed:
                    self._execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")  # the next transaction only
                self.connection.begin()
                yield
                self.connection.commit()
            except BaseException:
                if self.connection.open:
                    self.connection.rollback()
                raise

    def _execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        with self.connection.cursor() as cursor:
            return int(cursor.execute(sql, params))

    def _fetch_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        return tuple(row) if row is not None else None

    def _fetch_dict(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        with self.connection.cursor(pymysql.cursors.DictCursor) as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        return dict(row) if row is not None else None

    # -- claim ------------------------------------------------------------------

    def claim(self, request: ClaimRequest, lease_seconds: int) -> ClaimOutcome:
        """Atomically take the date, or say why not (call inside a transaction).

        Never waits on the metadata row's lock: a holder's open transaction (or a paused
        holder's, until the server ends its session) makes the claim answer from a plain
        read, or retry when the answer would be to take the date.
        """
        current = self._lock_metadata_row(request.sync_date)
        if current is None:
            return self._claim_new_date(request, lease_seconds)
        decision = decide_claim(current, request)
        if decision.kind != "claimed" or decision.previous is None:
            return decision  # skipped, in progress, or our own claim
        attempt = self._next_attempt(request.sync_date, int(current["attempt"]))
        self._execute(
            "UPDATE upsell_signal_sync_metadata SET status = 'started', s3_key = %s, s3_etag = %s, workflow_id = %s, "
            "holder_token = %s, holder_dry_run = %s, trigger_source = %s, attempt = %s, "
            "lease_expires_at = NOW() + INTERVAL %s SECOND, error_message = NULL, "
            "started_at = NOW(), completed_at = NULL, duration_ms = NULL, rows_processed = NULL, "
            "rows_inserted = NULL, rows_updated = NULL, rows_unchanged = NULL, rows_rejected = NULL, "
            "rows_deleted = NULL WHERE sync_date = %s",
            (
                request.s3_key,
                request.etag,
                request.invocation_id,
                request.holder_token,
                request.dry_run,
                request.trigger,
                attempt,
                lease_seconds,
                request.sync_date,
            ),
        )
        return ClaimOutcome("claimed", attempt, decision.reason, decision.previous)

    def _lock_metadata_row(self, sync_date: dt.date) -> dict[str, Any] | None:
        """The date's metadata row, locked; a busy row is read without the lock and marked so."""
        columns = f"*, lease_expires_at > NOW() AS {LEASE_LIVE}"
        try:
            with self.connection.cursor(pymysql.cursors.DictCursor) as cursor:
                cursor.execute(
                    f"SELECT {columns} FROM upsell_signal_sync_metadata WHERE sync_date = %s FOR UPDATE NOWAIT", (sync_date,)
                )
                row = cursor.fetchone()
        except pymysql.err.OperationalError as error:
            if error.args[0] != LOCK_WAIT_TIMEOUT:
                raise
            # Only this statement failed; a consistent read of the row needs no lock.
            busy = self._fetch_dict(f"SELECT {columns} FROM upsell_signal_sync_metadata WHERE sync_date = %s", (sync_date,))
            return None if busy is None else {**busy, ROW_LOCKED: True}
        return dict(row) if row is not None else None

    def _claim_new_date(self, request: ClaimRequest, lease_seconds: int) -> ClaimOutcome:
        attempt = self._next_attempt(request.sync_date, 0)
        try:
            self._execute(
                "INSERT INTO upsell_signal_sync_metadata (sync_date, s3_key, s3_etag, workflow_id, holder_token, "
                "holder_dry_run, status, trigger_source, attempt, lease_expires_at, started_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, 'started', %s, %s, NOW() + INTERVAL %s SECOND, NOW())",
                (
                    request.sync_date,
                    request.s3_key,
                    request.etag,
                    request.invocation_id,
                    request.holder_token,
                    request.dry_run,
                    request.trigger,
                    attempt,
                    lease_seconds,
                ),
            )
        except pymysql.err.IntegrityError as error:
            if error.args[0] != DUPLICATE_KEY:
                raise
            raise TransientError(f"another invocation claimed {request.sync_date} at the same instant") from error
        return ClaimOutcome("claimed", attempt)

    def _next_attempt(self, sync_date: dt.date, current_attempt: int) -> int:
        """One past every attempt the date has had, dry runs included: numbers are never reused."""
        row = self._fetch_one("SELECT MAX(attempt) FROM upsell_signal_sync_runs WHERE sync_date = %s", (sync_date,))
        recorded = int(row[0]) if row and row[0] is not None else 0
        return max(current_attempt, recorded) + 1

    def renew_lease(self, sync_date: dt.date, holder_token: str, lease_seconds: int) -> None:
        """Check we still hold the date and push the lease out (inside a transaction)."""
        self.check_holder(sync_date, holder_token)
        self._execute(
            "UPDATE upsell_signal_sync_metadata SET lease_expires_at = NOW() + INTERVAL %s SECOND WHERE sync_date = %s",
            (lease_seconds, sync_date),
        )

    def check_holder(self, sync_date: dt.date, holder_token: str) -> None:
        """ClaimLost unless this execution still holds the date; locks the row until the transaction ends."""
        holder = self._fetch_one(
            "SELECT holder_token, status, attempt FROM upsell_signal_sync_metadata WHERE sync_date = %s FOR UPDATE",
            (sync_date,),
        )
        if holder is None or holder[0] != holder_token or holder[1] != "started":
            now = "nobody" if holder is None else f"attempt {holder[2]}, {holder[1]}"
            raise ClaimLost(f"{sync_date} was taken over by another execution (now {now}); this one stops")

    def hand_over(self, sync_date: dt.date, holder_token: str, reason: str) -> bool:
        """Let the lease run out now, keeping the date started, so the next execution resumes at once."""
        return (
            self._execute(
                "UPDATE upsell_signal_sync_metadata SET lease_expires_at = NOW(), error_message = %s "
                "WHERE sync_date = %s AND holder_token = %s AND status = 'started'",
                (reason, sync_date, holder_token),
            )
            == 1
        )

    def complete(self, sync_date: dt.date, holder_token: str, etag: str, counts: dict[str, int], duration_ms: int) -> None:
        """Mark the date completed with its counts (inside the publish transaction)."""
        self.renew_lease(sync_date, holder_token, 0)
        self._execute(
            "UPDATE upsell_signal_sync_metadata SET status = 'completed', completed_etag = %s, lease_expires_at = NULL, "
            "completed_at = NOW(), duration_ms = %s, rows_processed = %s, rows_inserted = %s, rows_updated = %s, "
            "rows_unchanged = %s, rows_rejected = %s, rows_deleted = %s, error_message = NULL WHERE sync_date = %s",
            (
                etag,
                duration_ms,
                counts["rows_processed"],
                counts["rows_inserted"],
                counts["rows_updated"],
                counts["rows_unchanged"],
                counts["rows_rejected"],
                counts["rows_deleted"],
                sync_date,
            ),
        )

    def fail(self, sync_date: dt.date, holder_token: str, reason: str, duration_ms: int) -> bool:
        """Mark our claim failed with the reason; False when another execution holds it now."""
        return (
            self._execute(
                "UPDATE upsell_signal_sync_metadata SET status = 'failed', error_message = %s, lease_expires_at = NULL, "
                "completed_at = NOW(), duration_ms = %s WHERE sync_date = %s AND holder_token = %s AND status = 'started'",
                (reason, duration_ms, sync_date, holder_token),
            )
            == 1
        )

    def release_dry_run(self, sync_date: dt.date, holder_token: str, previous: dict[str, Any] | None) -> bool:
        """Put the metadata row back as it was before a dry run claimed the date; False if no longer ours."""
        if previous is None:
            return (
                self._execute(
                    "DELETE FROM upsell_signal_sync_metadata WHERE sync_date = %s AND holder_token = %s AND status = 'started'",
                    (sync_date, holder_token),
                )
                == 1
            )
        restored = {name: value for name, value in previous.items() if name not in ("id", "sync_date", ROW_LOCKED)}
        assignments = ", ".join(f"{name} = %({name})s" for name in restored)
        return (
            self._execute(
                f"UPDATE upsell_signal_sync_metadata SET {assignments} "
                "WHERE sync_date = %(restore_date)s AND holder_token = %(restore_holder)s AND status = 'started'",
                {**restored, "restore_date": sync_date, "restore_holder": holder_token},
            )
            == 1
        )

    # -- run history ------------------------------------------------------------

    def start_run(
        self,
        *,
        sync_date: dt.date,
        attempt: int,
        invocation_id: str,
        trigger: str,
        s3_key: str,
        etag: str | None,
        force_resync: bool,
        dry_run: bool,
        status: str = "started",
        reason: str | None = None,
    ) -> int:
        """Add this invocation to the run history; returns the run's id."""
        self._execute(
            "INSERT INTO upsell_signal_sync_runs (sync_date, attempt, workflow_id, trigger_source, s3_key, s3_etag, "
            "force_resync, dry_run, status, error_message, finished_at, duration_ms) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, IF(%s = 'started', NULL, NOW(3)), IF(%s = 'started', NULL, 0))",
            (
                sync_date,
                attempt,
                invocation_id,
                trigger,
                s3_key,
                etag,
                force_resync,
                dry_run,
                status,
                reason,
                status,
                status,
            ),
        )
        return int(self.connection.insert_id())  # type: ignore[no-untyped-call]

    def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        counts: dict[str, int | None],
        duration_ms: int,
        error_type: str | None = None,
        error_message: str | None = None,
    ) -> None:
        self._execute(
            "UPDATE upsell_signal_sync_runs SET status = %s, rows_processed = %s, rows_inserted = %s, "
            "rows_updated = %s, rows_unchanged = %s, rows_rejected = %s, rows_deleted = %s, rows_resumed = %s, "
            "error_type = %s, error_message = %s, finished_at = NOW(3), duration_ms = %s WHERE id = %s",
            (
                status,
                counts.get("rows_processed"),
                counts.get("rows_inserted"),
                counts.get("rows_updated"),
                counts.get("rows_unchanged"),
                counts.get("rows_rejected"),
                counts.get("rows_deleted"),
                counts.get("rows_resumed"),
                error_type,
                error_message,
                duration_ms,
                run_id,
            ),
        )

    # -- staging ----------------------------------------------------------------

    def staging_progress(self, sync_date: dt.date, etag: str) -> StagingProgress | None:
        """The pass staged from this exact object, if one exists (resumable)."""
        row = self._fetch_one(
            "SELECT attempt, rows_read, rows_staged, rows_rejected, chunks_committed, staging_complete "
            "FROM upsell_signal_staging_progress WHERE sync_date = %s AND s3_etag = %s",
            (sync_date, etag),
        )
        if row is None:
            return None
        return StagingProgress(int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]), bool(row[5]))

    def _partition_exists(self, sync_date: dt.date) -> bool:
        return (
            self._fetch_one(
                "SELECT 1 FROM information_schema.partitions WHERE table_schema = DATABASE() "
                "AND table_name = %s AND partition_name = %s",
                (STAGING, partition_name(sync_date)),
            )
            is not None
        )

    @contextmanager
    def _staging_lock(self, sync_date: dt.date) -> Iterator[None]:
        """Serialise the DDL of one date's partition: creating a pass and dropping one never interleave."""
        lock = f"{STAGING}:{sync_date.isoformat()}"
        with translate_errors(f"take the staging lock of {sync_date}"):  # noqa: SIM117 (the lock's errors are translated too)
            with named_lock(self.connection, lock, STAGING_LOCK_TIMEOUT_SECONDS):
                yield

    def _drop_partition(self, sync_date: dt.date) -> None:
        if self._partition_exists(sync_date):
            self._execute(f"ALTER TABLE {STAGING} DROP PARTITION {partition_name(sync_date)}")

    def drop_pass(self, sync_date: dt.date, etag: str, pass_attempt: int) -> bool:
        """Drop the date's staging if it still holds this pass; a newer pass's is left alone (DDL: commits)."""
        with self._staging_lock(sync_date), translate_errors(f"drop staging of {sync_date}"):
            # The progress row goes first: a partition left without one is dropped by the
            # next pass of the date, while a progress row without its rows would be resumed.
            owned = self._execute(
                "DELETE FROM upsell_signal_staging_progress WHERE sync_date = %s AND s3_etag = %s AND attempt = %s",
                (sync_date, etag, pass_attempt),
            )
            self.connection.commit()
            if owned:
                self._drop_partition(sync_date)
        return owned == 1

    def drop_abandoned_staging(self, older_than_days: int) -> list[dt.date]:
        """Drop staging nobody has touched for a while and no live claim holds; the dates dropped."""
        dropped = []
        for sync_date in self._abandoned_staging_dates(older_than_days):
            with self._staging_lock(sync_date), translate_errors(f"drop abandoned staging of {sync_date}"):
                # Asked again under the lock: a pass may have resumed since the list was read.
                if self._execute(
                    "DELETE p FROM upsell_signal_staging_progress p "
                    "LEFT JOIN upsell_signal_sync_metadata m ON m.sync_date = p.sync_date "
                    "WHERE p.sync_date = %s AND p.updated_at < NOW() - INTERVAL %s DAY "
                    "AND NOT (m.status <=> 'started' AND m.lease_expires_at > NOW())",
                    (sync_date, older_than_days),
                ):
                    self.connection.commit()
                    self._drop_partition(sync_date)
                    dropped.append(sync_date)
                else:
                    self.connection.commit()
        return dropped

    def _abandoned_staging_dates(self, older_than_days: int) -> list[dt.date]:
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT p.sync_date FROM upsell_signal_staging_progress p "
                "LEFT JOIN upsell_signal_sync_metadata m ON m.sync_date = p.sync_date "
                "WHERE p.updated_at < NOW() - INTERVAL %s DAY "
                "AND NOT (m.status <=> 'started' AND m.lease_expires_at > NOW())",
                (older_than_days,),
            )
            rows = [row[0] for row in cursor.fetchall()]
        self.connection.commit()
        return rows

    def start_staging(self, sync_date: dt.date, etag: str, attempt: int, holder_token: str) -> StagingProgress:
        """Begin a fresh pass for this object: empty partition, progress at row 0 (only while we hold the date)."""
        with self._staging_lock(sync_date), translate_errors(f"prepare staging of {sync_date}"):
            self.connection.begin()
            self.check_holder(sync_date, holder_token)  # a stale holder must not drop the pass of the date's new one
            self._execute("DELETE FROM upsell_signal_staging_progress WHERE sync_date = %s", (sync_date,))
            self.connection.commit()
            self._drop_partition(sync_date)
            self._execute(
                f"ALTER TABLE {STAGING} ADD PARTITION "
                f"(PARTITION {partition_name(sync_date)} VALUES IN ('{sync_date.isoformat()}'))"
            )
            self._execute(
                "INSERT INTO upsell_signal_staging_progress (sync_date, s3_etag, attempt) VALUES (%s, %s, %s)",
                (sync_date, etag, attempt),
            )
            self.connection.commit()
        return StagingProgress(attempt, 0, 0, 0, 0, False)

    def load_staging_file(self, sync_date: dt.date, path: Path, expected_rows: int) -> None:
        """LOAD DATA LOCAL INFILE a file written by staging_file.write_load_file into staging."""
        self._load_file(
            f"LOAD DATA LOCAL INFILE %s INTO TABLE {STAGING} CHARACTER SET utf8mb4 ({SOURCE_ROW}, {_COLUMNS}) SET sync_date = %s",
            path,
            (str(path), sync_date),
            expected_rows,
        )

    def load_signals_file(self, path: Path, expected_rows: int) -> None:
        """LOAD DATA LOCAL INFILE the same file straight into the signals table (a first load)."""
        self._load_file(
            f"LOAD DATA LOCAL INFILE %s INTO TABLE {TARGET} CHARACTER SET utf8mb4 "
            f"(@{SOURCE_ROW}, {_COLUMNS}) SET created_at = NOW(), updated_at = NOW()",
            path,
            (str(path),),
            expected_rows,
        )

    def _load_file(self, sql: str, path: Path, params: Sequence[Any], expected_rows: int) -> None:
        # The connection sends `path` only, and only while this statement runs.
        with offering_local_file(self.connection, path), self.connection.cursor() as cursor:
            loaded = cursor.execute(sql, params)
            # LOCAL turns conversion errors into warnings; any warning means a value was
            # changed on the way in, which validation exists to prevent.
            if cursor.warning_count:
                cursor.execute("SHOW WARNINGS LIMIT 5")
                _raise_load_warnings([(int(row[1]), str(row[2])) for row in cursor.fetchall()])
        if loaded != expected_rows:
            raise PermanentError(f"load wrote {loaded} rows, expected {expected_rows}")

    def insert_staging_rows(self, sync_date: dt.date, rows: pa.Table) -> None:
        """Multi-row INSERT of staged rows: the fallback where LOCAL INFILE is disabled."""
        try:
            self._insert_rows(STAGING, {"sync_date": sync_date}, (SOURCE_ROW, *COLUMN_NAMES), rows)
        except (pymysql.err.IntegrityError, pymysql.err.OperationalError) as error:
            if error.args[0] not in (NO_PARTITION, DUPLICATE_KEY):
                raise
            _raise_load_warnings([(int(error.args[0]), str(error.args[1]))])

    def insert_signal_rows(self, rows: pa.Table) -> None:
        """Multi-row INSERT straight into the signals table (a first load without LOCAL INFILE)."""
        self._insert_rows(TARGET, {}, COLUMN_NAMES, rows)

    def _insert_rows(self, table: str, fixed: dict[str, Any], row_columns: Sequence[str], rows: pa.Table) -> None:
        # Values rendered by insert_statements from typed Arrow columns with PyMySQL's own
        # escaping rules (not parameters, so no per-value Python); identifiers are ours.
        status = self.connection.server_status  # type: ignore[attr-defined]  # kept current by every reply
        plain_quotes = bool(status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES)
        constants = {name: pa.scalar(value) for name, value in fixed.items()}
        statements = insert_statements(table, row_columns, rows, fixed=constants, no_backslash_escapes=plain_quotes)
        with self.connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)  # type: ignore[arg-type]  # bytes pass through PyMySQL unchanged
                if cursor.warning_count:  # a value changed on the way in, as _load_file checks
                    cursor.execute("SHOW WARNINGS LIMIT 5")
                    _raise_load_warnings([(int(row[1]), str(row[2])) for row in cursor.fetchall()])

    def insert_rejected_rows(self, sync_date: dt.date, attempt: int, rejected: Sequence[RejectedRow]) -> None:
        """Record rejected rows, in statements of bounded size (see _RejectsCursor)."""
        if not rejected:
            return
        with self.connection.cursor(_RejectsCursor) as cursor:
            cursor.executemany(
                "INSERT INTO upsell_signal_rejected_rows "
                "(sync_date, attempt, source_row, cdms_canonical_company_id, reasons, original_values) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                [(sync_date, attempt, row.source_row, row.company_id, row.reasons, row.original_values_json) for row in rejected],
            )

    def advance_progress(self, sync_date: dt.date, etag: str, *, from_row: int, to_row: int, staged: int, rejected: int) -> None:
        """Record a committed chunk; refuses if another writer moved the pass meanwhile."""
        moved = self._execute(
            "UPDATE upsell_signal_staging_progress SET rows_read = %s, rows_staged = rows_staged + %s, "
            "rows_rejected = rows_rejected + %s, chunks_committed = chunks_committed + 1 "
            "WHERE sync_date = %s AND s3_etag = %s AND rows_read = %s AND NOT staging_complete",
            (to_row, staged, rejected, sync_date, etag, from_row),
        )
        if moved != 1:
            raise ClaimLost(f"staging progress of {sync_date} moved under us (expected rows_read={from_row})")

    def finish_staging(self, sync_date: dt.date, etag: str, rows_read: int) -> None:
        """Mark the pass complete once every row of the file is staged or rejected."""
        if (
            self._execute(
                "UPDATE upsell_signal_staging_progress SET staging_complete = TRUE "
                "WHERE sync_date = %s AND s3_etag = %s AND rows_read = %s",
                (sync_date, etag, rows_read),
            )
            != 1
        ):
            raise ClaimLost(f"staging progress of {sync_date} is not at row {rows_read}; another writer moved it")

    # -- guards' history --------------------------------------------------------

    def newest_completed_date(self) -> dt.date | None:
        row = self._fetch_one("SELECT MAX(sync_date) FROM upsell_signal_sync_metadata WHERE status = 'completed'")
        return row[0] if row else None

    def last_completed_before(self, sync_date: dt.date) -> CompletedSync | None:
        """The latest completed date other than this one, with the rows it loaded."""
        row = self._fetch_one(
            "SELECT sync_date, rows_processed - rows_rejected FROM upsell_signal_sync_metadata "
            "WHERE status = 'completed' AND sync_date <> %s ORDER BY sync_date DESC LIMIT 1",
            (sync_date,),
        )
        return CompletedSync(row[0], int(row[1])) if row else None

    # -- publish ----------------------------------------------------------------

    @contextmanager
    def publish_lock(self, timeout_seconds: int) -> Iterator[None]:
        """Serialise publishes of different dates (MariaDB named lock; this session may hold it already)."""
        with translate_errors("take the publish lock"), named_lock(self.connection, PUBLISH_LOCK, timeout_seconds):
            yield

    def try_publish_lock(self) -> bool:
        """Take the publish lock if it is free this instant; True when taken (held until the session ends or released)."""
        with translate_errors("take the publish lock"):
            return get_lock(self.connection, PUBLISH_LOCK, 0)

    def open_change_list(self, rows: int) -> None:
        """Create the empty list of new and changed staged rows, sized for up to `rows` rows."""
        self._execute(f"DROP TEMPORARY TABLE IF EXISTS {CHANGES}")
        with self._list_engine(rows) as engine:
            self._execute(
                f"CREATE TEMPORARY TABLE {CHANGES} (target_id BIGINT UNSIGNED NOT NULL, source_row INT UNSIGNED NOT NULL, "
                f"PRIMARY KEY USING BTREE (target_id, source_row)) ENGINE={engine}"
            )

    def list_changes(self, sync_date: dt.date, from_row: int = 0, to_row: int | None = None) -> int:
        """Add the staged rows (numbered from_row up to to_row) that are new or changed to the list; how many.

        One pass over the staged rows, each looked up by key: unchanged rows are left
        out, so a re-sync of the same file lists nothing. target_id 0 marks a new key.
        """
        rows_between = f"AND s.{SOURCE_ROW} >= %s AND s.{SOURCE_ROW} < %s " if to_row is not None else ""
        return self._execute(
            f"INSERT INTO {CHANGES} (target_id, source_row) "
            f"SELECT COALESCE(t.id, 0), s.{SOURCE_ROW} FROM {STAGING} s "
            f"LEFT JOIN {TARGET} t ON t.{KEY_COLUMN} = s.{KEY_COLUMN} "
            f"WHERE s.sync_date = %s {rows_between}AND (t.id IS NULL OR NOT ({_ROW_UNCHANGED}))",
            (sync_date, from_row, to_row) if to_row is not None else (sync_date,),
        )

    def plan_publish(
        self,
        sync_date: dt.date,
        rows_staged: int,
        *,
        pass_attempt: int,
        delete_missing: bool,
        rows_listed: int | None = None,
    ) -> PublishPlan:
        """Count exactly what publishing the staged rows will do; writes nothing to the table.

        Lists the staged rows that are new or changed, by row number, in a temporary table
        that `update_changed` and `insert_new` then apply (call all three in one transaction),
        unless this session has listed them already (`rows_listed`, under the publish lock).
        """
        table_rows = self.count_table() if delete_missing else 0
        if (table_rows == 0) if delete_missing else self.table_is_empty():
            return PublishPlan(rows_staged, rows_staged, 0, 0, 0, into_empty_table=True)
        if rows_listed is None:
            self.open_change_list(rows_staged)
            rows_listed = self.list_changes(sync_date)
        new_row = self._fetch_one(f"SELECT COUNT(*) FROM {CHANGES} WHERE target_id = 0")
        rows_to_insert = int(new_row[0]) if new_row else 0
        rows_to_delete = 0
        if delete_missing:
            # Keys are unique in staging, so the rows that stay are the staged keys that
            # exist, and the companies whose rows were rejected: a rejected row keeps what
            # we had. (A rejected key is never staged: every copy of a repeated key is rejected.)
            rows_kept = rows_staged - rows_to_insert + self._count_rejected_companies(sync_date, pass_attempt)
            rows_to_delete = table_rows - rows_kept
        return PublishPlan(rows_staged, rows_to_insert, rows_listed - rows_to_insert, rows_to_delete, table_rows)

    def _count_rejected_companies(self, sync_date: dt.date, pass_attempt: int) -> int:
        """Companies in the table whose row in the file was rejected by this staging pass."""
        row = self._fetch_one(
            f"SELECT COUNT(*) FROM {TARGET} t WHERE t.{KEY_COLUMN} IN ({_REJECTED_KEYS})", (sync_date, pass_attempt)
        )
        return int(row[0]) if row else 0

    @contextmanager
    def _list_engine(self, rows: int) -> Iterator[str]:
        """The engine for a list of up to `rows` rows; MEMORY gets a size cap for the block only."""
        if rows > PLAN_IN_MEMORY_MAX_ROWS:
            yield "InnoDB"
            return
        # The cap applies to tables created while it is set; the default comes back after.
        self._execute("SET SESSION max_heap_table_size = %s", (max(PLAN_MEMORY_MIN_BYTES, rows * PLAN_MEMORY_BYTES_PER_ROW),))
        try:
            yield "MEMORY"
        finally:
            self._execute("SET SESSION max_heap_table_size = DEFAULT")

    def discard_plan(self) -> None:
        self._execute(f"DROP TEMPORARY TABLE IF EXISTS {CHANGES}")

    def table_is_empty(self) -> bool:
        return self._fetch_one(f"SELECT 1 FROM {TARGET} LIMIT 1") is None

    def count_table(self) -> int:
        row = self._fetch_one(f"SELECT COUNT(*) FROM {TARGET}")
        return int(row[0]) if row else 0

    def update_changed(self, sync_date: dt.date, plan: PublishPlan) -> int:
        """Update the rows the plan lists as changed; returns how many (the plan's count, checked).

        Only changed rows are touched, so unchanged rows keep updated_at. MariaDB updates
        on the fly only the first table of a join and buffers the rest: a few changes are
        best driven from the list, a large share (every row, when the file stamps its run
        time on each) from the table itself, read in id order (measured: `make bench`).
        """
        if not plan.rows_to_update:
            return 0
        if plan.rows_to_update >= plan.rows_staged * DRIVE_UPDATE_FROM_TABLE_SHARE:
            join_order = f"{TARGET} t STRAIGHT_JOIN {CHANGES} c ON c.target_id = t.id STRAIGHT_JOIN {STAGING} s"
        else:
            # By the list's key, so the table is visited in id order (a MEMORY table's own
            # scan order is the order rows were listed in, the file's).
            join_order = (
                f"{CHANGES} c FORCE INDEX (PRIMARY) STRAIGHT_JOIN {TARGET} t ON t.id = c.target_id STRAIGHT_JOIN {STAGING} s"
            )
        updated = self._execute(
            f"UPDATE {join_order} ON s.sync_date = %s AND s.{SOURCE_ROW} = c.source_row "
            f"SET {_SET_FROM_STAGING}, t.updated_at = NOW() WHERE c.target_id > 0",
            (sync_date,),
        )
        if updated != plan.rows_to_update:
            raise TransientError(f"updated {updated} rows, the plan listed {plan.rows_to_update}: the table changed meanwhile")
        return updated

    def insert_new(self, sync_date: dt.date, plan: PublishPlan) -> int:
        """Insert the rows the plan lists as new; returns how many. No id is burnt on existing keys.

        Neither statement reads the table it writes, so MariaDB streams the rows in
        instead of buffering them first.
        """
        if plan.into_empty_table:
            inserted = self._execute(
                f"INSERT INTO {TARGET} ({_COLUMNS}, created_at, updated_at) "
                f"SELECT {_STAGED_COLUMNS}, NOW(), NOW() FROM {STAGING} s WHERE s.sync_date = %s",
                (sync_date,),
            )
        elif plan.rows_to_insert:
            inserted = self._execute(
                f"INSERT INTO {TARGET} ({_COLUMNS}, created_at, updated_at) "
                f"SELECT {_STAGED_COLUMNS}, NOW(), NOW() FROM {CHANGES} c "
                f"STRAIGHT_JOIN {STAGING} s ON s.sync_date = %s AND s.{SOURCE_ROW} = c.source_row WHERE c.target_id = 0",
                (sync_date,),
            )
        else:
            inserted = 0
        if inserted != plan.rows_to_insert:
            raise TransientError(f"inserted {inserted} rows, the plan listed {plan.rows_to_insert}: the table changed meanwhile")
        return inserted

    def delete_missing(self, sync_date: dt.date, pass_attempt: int) -> int:
        """Delete companies absent from the file (neither staged nor rejected by this pass); returns how many."""
        # Staging has no index (cheapest to load), and MariaDB does not materialise a
        # NOT IN subquery of a DELETE (it ran for minutes at 1M rows): the staged keys go
        # into an indexed temporary table first, so the anti-join is one lookup per row.
        self._execute("DROP TEMPORARY TABLE IF EXISTS staged_keys")
        self._execute(
            f"CREATE TEMPORARY TABLE staged_keys (company_id VARCHAR(64) COLLATE utf8mb4_nopad_bin PRIMARY KEY) "
            f"SELECT {KEY_COLUMN} AS company_id FROM {STAGING} WHERE sync_date = %s",
            (sync_date,),
        )
        self._execute(
            f"INSERT IGNORE INTO staged_keys (company_id) SELECT r.cdms_canonical_company_id FROM ({_REJECTED_KEYS}) r",
            (sync_date, pass_attempt),
        )
        deleted = self._execute(
            f"DELETE t FROM {TARGET} t LEFT JOIN staged_keys k ON k.company_id = t.{KEY_COLUMN} WHERE k.company_id IS NULL"
        )
        self._execute("DROP TEMPORARY TABLE staged_keys")
        return deleted

    # -- operator reports (scripts/status) ------------------------------------------

    def recent_syncs(self, days: int) -> list[dict[str, Any]]:
        """The metadata rows of the last `days` dates, newest first."""
        with self.connection.cursor(pymysql.cursors.DictCursor) as cursor:
            cursor.execute(
                "SELECT sync_date, status, trigger_source, attempt, rows_processed, rows_inserted, rows_updated, "
                "rows_unchanged, rows_rejected, rows_deleted, duration_ms, started_at, completed_at, error_message "
                "FROM upsell_signal_sync_metadata WHERE sync_date >= CURRENT_DATE - INTERVAL %s DAY "
                "ORDER BY sync_date DESC",
                (days,),
            )
            return [dict(row) for row in cursor.fetchall()]

    def runs_for(self, sync_date: dt.date) -> list[dict[str, Any]]:
        """Every recorded invocation for a date, oldest first."""
        with self.connection.cursor(pymysql.cursors.DictCursor) as cursor:
            cursor.execute(
                "SELECT started_at, attempt, status, trigger_source, workflow_id, force_resync, dry_run, rows_processed, "
                "rows_inserted, rows_updated, rows_unchanged, rows_rejected, rows_deleted, rows_resumed, duration_ms, "
                "error_type, error_message FROM upsell_signal_sync_runs WHERE sync_date = %s ORDER BY id",
                (sync_date,),
            )
            return [dict(row) for row in cursor.fetchall()]

    def rejects_for(self, sync_date: dt.date, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """Rejected rows of the date's latest staging pass: (how many in all, the first `limit`)."""
        with self.connection.cursor(pymysql.cursors.DictCursor) as cursor:
            cursor.execute(
                "SELECT COUNT(*) AS total, MAX(attempt) AS attempt FROM upsell_signal_rejected_rows WHERE sync_date = %s "
                "AND attempt = (SELECT MAX(attempt) FROM upsell_signal_rejected_rows WHERE sync_date = %s)",
                (sync_date, sync_date),
            )
            summary = cursor.fetchone()
            cursor.execute(
                "SELECT source_row, cdms_canonical_company_id, reasons, original_values FROM upsell_signal_rejected_rows "
                "WHERE sync_date = %s AND attempt = %s ORDER BY source_row LIMIT %s",
                (sync_date, summary["attempt"] if summary else 0, limit),
            )
            return int(summary["total"] if summary else 0), [dict(row) for row in cursor.fetchall()]
