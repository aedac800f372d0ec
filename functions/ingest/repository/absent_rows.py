"""The publish's last write in delete mode: the companies the file no longer carries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from functions.ingest.columns import KEY_COLUMN
from functions.ingest.repository.names import CHANGES, STAGED_KEYS, UNMATCHED
from functions.ingest.repository.session import Session
from functions.ingest.repository.signals import REJECTED_KEYS
from functions.shared.tables import STAGING, TARGET

DELETE_IDS_PER_STATEMENT = 10_000  # about 100 KB of SQL a statement


class AbsentRows:
    """Deletes the table's companies absent from the file: neither staged nor rejected by this pass."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def delete(self, sync_date: dt.date, pass_number: int, unmatched: Iterable[list[int]] | None) -> int:
        """Delete companies absent from the file (neither staged nor rejected by this pass); returns how many.

        `unmatched`: the ids of the rows a compare found no file row equal to, the only
        candidates when unchanged rows were not staged; None: every valid row was staged.
        Call after the writes, with the change list still open.
        """
        # A candidate the change list names is a changed row's old state when the list holds
        # the id of every staged key the table has: then only the rejected keys need a table
        # of their own. Otherwise (every row staged, or a staged row the list left out as
        # unchanged) every staged key is kept by name.
        skip_listed = unmatched is not None and self._every_staged_row_listed(sync_date)
        self._create_kept_keys(sync_date, pass_number, with_staged=not skip_listed)
        if unmatched is not None:
            deleted = self._delete_unmatched(unmatched, skip_listed=skip_listed)
        else:
            deleted = self.session.execute(
                f"DELETE t FROM {TARGET} t LEFT JOIN {STAGED_KEYS} k ON k.company_id = t.{KEY_COLUMN} WHERE k.company_id IS NULL"
            )
        self.session.execute(f"DROP TEMPORARY TABLE {STAGED_KEYS}")
        return deleted

    def delete_ids(self, row_ids: tuple[int, ...]) -> int:
        """Delete exactly these rows (an older date's share under newer ones, newest_wins.py); returns how many."""
        deleted = 0
        for start in range(0, len(row_ids), DELETE_IDS_PER_STATEMENT):
            batch = row_ids[start : start + DELETE_IDS_PER_STATEMENT]
            marks = ", ".join(["%s"] * len(batch))
            deleted += self.session.execute(f"DELETE FROM {TARGET} WHERE id IN ({marks})", batch)
        return deleted

    def _every_staged_row_listed(self, sync_date: dt.date) -> bool:
        """Whether the change list holds every row staged for the date (a pass that staged only rows that differ)."""
        staged = self.session.fetch_one(f"SELECT COUNT(*) FROM {STAGING} WHERE sync_date = %s", (sync_date,))
        listed = self.session.fetch_one(f"SELECT COUNT(*) FROM {CHANGES}")
        return staged is not None and listed is not None and int(staged[0]) == int(listed[0])

    def _create_kept_keys(self, sync_date: dt.date, pass_number: int, *, with_staged: bool) -> None:
        """The keys a delete keeps by name: the pass's rejected ones and, with_staged, every staged one."""
        # The staging table's key leads with sync_date and the source row, not the company
        # id, and MariaDB does not materialise a NOT IN subquery of a DELETE (it ran for
        # minutes at 1M rows): the keys go into an indexed temporary table first, so the
        # anti-join is one lookup per candidate row.
        self.session.execute(f"DROP TEMPORARY TABLE IF EXISTS {STAGED_KEYS}")
        self.session.execute(
            f"CREATE TEMPORARY TABLE {STAGED_KEYS} (company_id VARCHAR(64) COLLATE utf8mb4_nopad_bin PRIMARY KEY) ENGINE=InnoDB"
        )
        if with_staged:
            self.session.execute(
                f"INSERT INTO {STAGED_KEYS} (company_id) SELECT {KEY_COLUMN} FROM {STAGING} WHERE sync_date = %s", (sync_date,)
            )
        self.session.execute(
            f"INSERT IGNORE INTO {STAGED_KEYS} (company_id) SELECT r.cdms_canonical_company_id FROM ({REJECTED_KEYS}) r",
            (sync_date, pass_number),
        )

    def _delete_unmatched(self, unmatched: Iterable[list[int]], *, skip_listed: bool) -> int:
        """Delete the candidate rows whose key is not kept (skip_listed: nor their id on the change list)."""
        list_join = f"LEFT JOIN {CHANGES} c ON c.target_id = u.id " if skip_listed else ""
        not_listed = "c.target_id IS NULL AND " if skip_listed else ""
        self.session.execute(f"DROP TEMPORARY TABLE IF EXISTS {UNMATCHED}")
        self.session.execute(f"CREATE TEMPORARY TABLE {UNMATCHED} (id BIGINT UNSIGNED PRIMARY KEY) ENGINE=InnoDB")
        with self.session.connection.cursor() as cursor:
            for page in unmatched:
                cursor.executemany(f"INSERT INTO {UNMATCHED} (id) VALUES (%s)", [(row_id,) for row_id in page])
        deleted = self.session.execute(
            f"DELETE t FROM {UNMATCHED} u {list_join}STRAIGHT_JOIN {TARGET} t ON t.id = u.id "
            f"LEFT JOIN {STAGED_KEYS} k ON k.company_id = t.{KEY_COLUMN} WHERE {not_listed}k.company_id IS NULL"
        )
        self.session.execute(f"DROP TEMPORARY TABLE {UNMATCHED}")
        return deleted
