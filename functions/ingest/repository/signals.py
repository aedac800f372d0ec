"""The signals table: a first load into it, and a publish (list the changes, plan, update, insert; absent_rows.py deletes).

A publish lists the staged rows that are new or changed in a temporary table, counts
exactly what it will do from that list, then applies it with set-based statements that
each check their own count against the plan.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pymysql

from functions.ingest.columns import COLUMN_NAMES, KEY_COLUMN
from functions.ingest.repository.names import CHANGES, PUBLISH_LOCK
from functions.ingest.repository.session import Session
from functions.ingest.validation import SOURCE_ROW
from functions.shared.errors import TransientError
from functions.shared.tables import GENERATION, REJECTED, STAGING, TARGET

# From this share of changed rows on, an update is driven from the signals table (one
# scan in id order) rather than from the list of changes (which MariaDB buffers); the
# measurements behind it are in the README's Performance section.
DRIVE_UPDATE_FROM_TABLE_SHARE = 0.25
# The list lives in a MEMORY table, in the server's RAM, sized from the staged rows (a
# listed row costs 48 to 64 bytes there). Past a few million rows it goes to InnoDB
# instead, so that a huge file cannot take hundreds of MB of server memory.
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
REJECTED_KEYS = (
    "SELECT cdms_canonical_company_id COLLATE utf8mb4_nopad_bin AS cdms_canonical_company_id "
    f"FROM {REJECTED} WHERE sync_date = %s AND attempt = %s "
    "AND cdms_canonical_company_id IS NOT NULL AND CHAR_LENGTH(cdms_canonical_company_id) <= 64"
)
_SET_FROM_STAGING = ", ".join(f"t.{name} = s.{name}" for name in _DATA_COLUMNS)


@dataclass(frozen=True)
class PublishPlan:
    """Exact counts of what a publish will do, computed before it writes."""

    rows_staged: int
    rows_to_insert: int
    rows_to_update: int
    rows_to_delete: int
    table_rows: int  # counted only when deleting
    into_empty_table: bool = False
    rows_superseded: int = 0  # new or changed rows that a newer date's file carries: left as it wrote them
    ids_to_delete: tuple[int, ...] | None = None  # delete mode under newer dates: exactly these rows

    @property
    def rows_unchanged(self) -> int:
        return self.rows_staged - self.rows_to_insert - self.rows_to_update - self.rows_superseded


class SignalsTable:
    """SQL that writes company_upsell_signals, and the publish lock that serialises it."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def connection(self) -> pymysql.Connection[Any]:
        return self.session.connection

    @contextmanager
    def publish_lock(self, timeout_seconds: int) -> Iterator[None]:
        """Serialise publishes of different dates (MariaDB named lock; this session may hold it already)."""
        with self.session.locked(PUBLISH_LOCK, timeout_seconds, "take the publish lock"):
            yield

    def hold_publish_lock(self, timeout_seconds: int) -> None:
        """Take the publish lock for the rest of this session; TransientError if another publish holds it that long."""
        self.session.hold_lock(PUBLISH_LOCK, timeout_seconds, "take the publish lock")

    def table_is_empty(self) -> bool:
        return self.session.fetch_one(f"SELECT 1 FROM {TARGET} LIMIT 1") is None

    def generation(self) -> int:
        """How many publishes and first loads have written the table (migrations/0013)."""
        row = self.session.fetch_one(f"SELECT generation FROM {GENERATION} WHERE id = 1")
        return int(row[0]) if row else 0

    def count_a_write(self) -> None:
        """Add this transaction's write of the table to the generation (call it in the transaction that writes)."""
        self.session.execute(f"UPDATE {GENERATION} SET generation = generation + 1 WHERE id = 1")

    def count_table(self) -> int:
        row = self.session.fetch_one(f"SELECT COUNT(*) FROM {TARGET}")
        return int(row[0]) if row else 0

    # -- a first load ---------------------------------------------------------------

    def load_signals_file(self, path: Path, expected_rows: int) -> None:
        """LOAD DATA LOCAL INFILE a staging file straight into the signals table (a first load)."""
        self.session.load_file(
            f"LOAD DATA LOCAL INFILE %s INTO TABLE {TARGET} CHARACTER SET utf8mb4 "
            f"(@{SOURCE_ROW}, {_COLUMNS}) SET created_at = NOW(), updated_at = NOW()",
            path,
            (str(path),),
            expected_rows,
        )

    def insert_signal_rows(self, rows: pa.Table) -> None:
        """Multi-row INSERT straight into the signals table (a first load without LOCAL INFILE)."""
        self.session.insert_rows(TARGET, {}, COLUMN_NAMES, rows)

    # -- the list of changes and the plan --------------------------------------------

    def open_change_list(self, rows: int) -> None:
        """Create the empty list of new and changed staged rows, sized for up to `rows` rows."""
        self.session.execute(f"DROP TEMPORARY TABLE IF EXISTS {CHANGES}")
        with _list_engine(self.session, rows) as engine:
            self.session.execute(
                f"CREATE TEMPORARY TABLE {CHANGES} (target_id BIGINT UNSIGNED NOT NULL, source_row INT UNSIGNED NOT NULL, "
                f"PRIMARY KEY USING BTREE (target_id, source_row)) ENGINE={engine}"
            )

    def list_changes(self, sync_date: dt.date, from_row: int = 0, to_row: int | None = None) -> int:
        """Add the staged rows (numbered from_row up to to_row) that are new or changed to the list; how many.

        One pass over the staged rows, each looked up by key: unchanged rows are left
        out, so a re-sync of the same file lists nothing. target_id 0 marks a new key.
        """
        rows_between = f"AND s.{SOURCE_ROW} >= %s AND s.{SOURCE_ROW} < %s " if to_row is not None else ""
        return self.session.execute(
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
        pass_number: int,
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
        new_row = self.session.fetch_one(f"SELECT COUNT(*) FROM {CHANGES} WHERE target_id = 0")
        rows_to_insert = int(new_row[0]) if new_row else 0
        rows_to_delete = 0
        if delete_missing:
            # Keys are unique in staging, so the rows that stay are the staged keys that
            # exist, and the companies whose rows were rejected: a rejected row keeps what
            # we had. (A rejected key is never staged: every copy of a repeated key is rejected.)
            rows_kept = rows_staged - rows_to_insert + self._count_rejected_companies(sync_date, pass_number)
            rows_to_delete = table_rows - rows_kept
        return PublishPlan(rows_staged, rows_to_insert, rows_listed - rows_to_insert, rows_to_delete, table_rows)

    def _count_rejected_companies(self, sync_date: dt.date, pass_number: int) -> int:
        """Companies in the table whose row in the file was rejected by this staging pass."""
        row = self.session.fetch_one(
            f"SELECT COUNT(*) FROM {TARGET} t WHERE t.{KEY_COLUMN} IN ({REJECTED_KEYS})", (sync_date, pass_number)
        )
        return int(row[0]) if row else 0

    def discard_plan(self) -> None:
        self.session.execute(f"DROP TEMPORARY TABLE IF EXISTS {CHANGES}")

    # -- the writes ---------------------------------------------------------------------

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
        updated = self.session.execute(
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
            inserted = self.session.execute(
                f"INSERT INTO {TARGET} ({_COLUMNS}, created_at, updated_at) "
                f"SELECT {_STAGED_COLUMNS}, NOW(), NOW() FROM {STAGING} s WHERE s.sync_date = %s",
                (sync_date,),
            )
        elif plan.rows_to_insert:
            inserted = self.session.execute(
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


@contextmanager
def _list_engine(session: Session, rows: int) -> Iterator[str]:
    """The engine for a list of up to `rows` rows; MEMORY gets a size cap for the block only."""
    if rows > PLAN_IN_MEMORY_MAX_ROWS:
        yield "InnoDB"
        return
    # The cap applies to tables created while it is set; the default comes back after.
    session.execute("SET SESSION max_heap_table_size = %s", (max(PLAN_MEMORY_MIN_BYTES, rows * PLAN_MEMORY_BYTES_PER_ROW),))
    try:
        yield "MEMORY"
    finally:
        session.execute("SET SESSION max_heap_table_size = DEFAULT")
