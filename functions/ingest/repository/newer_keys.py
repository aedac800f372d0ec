"""The keys the files of newer completed dates carry, and the listed changes they take out of a publish (newest_wins.py)."""

from __future__ import annotations

import datetime as dt

from functions.ingest.columns import KEY_COLUMN
from functions.ingest.repository.names import CHANGES, NEWER_KEYS
from functions.ingest.repository.session import Session
from functions.ingest.validation import SOURCE_ROW
from functions.shared.tables import STAGING

# The listed changes whose company a newer completed date's file carries.
_CARRIED_BY_NEWER_DATES = (
    f"STRAIGHT_JOIN {STAGING} s ON s.sync_date = %s AND s.{SOURCE_ROW} = c.source_row "
    f"STRAIGHT_JOIN {NEWER_KEYS} k ON k.company_id = s.{KEY_COLUMN} "
)


class NewerKeys:
    """A temporary set of keys, over the publishing session (it must see the session's list of changes)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def open(self) -> None:
        """Create the empty set of keys that the files of newer completed dates carry."""
        self.session.execute(f"DROP TEMPORARY TABLE IF EXISTS {NEWER_KEYS}")
        self.session.execute(
            f"CREATE TEMPORARY TABLE {NEWER_KEYS} (company_id VARCHAR(64) COLLATE utf8mb4_nopad_bin PRIMARY KEY) ENGINE=InnoDB"
        )

    def add(self, keys: list[str]) -> None:
        """Add keys to the set (PyMySQL sends them as multi-row INSERTs)."""
        if keys:
            with self.session.connection.cursor() as cursor:
                cursor.executemany(f"INSERT IGNORE INTO {NEWER_KEYS} (company_id) VALUES (%s)", [(key,) for key in keys])

    def supersede_changes(self, sync_date: dt.date, *, every_change: bool) -> tuple[int, int]:
        """Take out of the list the changes a newer date carries (or, `every_change`, all); (inserts, updates) taken."""
        carried, parameters = ("", ()) if every_change else (_CARRIED_BY_NEWER_DATES, (sync_date,))
        row = self.session.fetch_one(
            f"SELECT COALESCE(SUM(c.target_id = 0), 0), COALESCE(SUM(c.target_id > 0), 0) FROM {CHANGES} c {carried}",
            parameters,
        )
        inserts, updates = (int(row[0]), int(row[1])) if row else (0, 0)
        self.session.execute(f"DELETE c FROM {CHANGES} c {carried}", parameters)
        if not every_change:
            self.session.execute(f"DROP TEMPORARY TABLE {NEWER_KEYS}")
        return inserts, updates
