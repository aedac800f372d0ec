"""The keys the files of newer completed dates carry, and the listed changes they take out of a publish (newest_wins.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pymysql.cursors

from functions.ingest.columns import KEY_COLUMN, SIGNAL_COLUMNS
from functions.ingest.repository.names import CHANGES, LEFT_TO_OLDER, NEWER_KEYS, NEWER_REJECTED
from functions.ingest.repository.session import Session
from functions.ingest.repository.signals import REJECTED_KEYS
from functions.ingest.validation import SOURCE_ROW
from functions.shared.tables import STAGING, TARGET

_KEY_LENGTH = next(column.max_length for column in SIGNAL_COLUMNS if column.name == KEY_COLUMN) or 0
_KEY = f"company_id VARCHAR({_KEY_LENGTH}) COLLATE utf8mb4_nopad_bin"

# The listed changes whose company a newer completed date's file carries.
_CARRIED_BY_NEWER_DATES = (
    f"STRAIGHT_JOIN {STAGING} s ON s.sync_date = %s AND s.{SOURCE_ROW} = c.source_row "
    f"STRAIGHT_JOIN {NEWER_KEYS} k ON k.company_id = s.{KEY_COLUMN} "
)
# Those, and every update: a newer date whose file cannot be read may have published any company the table has.
_CARRIED_OR_IN_THE_TABLE = (
    f"STRAIGHT_JOIN {STAGING} s ON s.sync_date = %s AND s.{SOURCE_ROW} = c.source_row "
    f"LEFT JOIN {NEWER_KEYS} k ON k.company_id = s.{KEY_COLUMN} WHERE c.target_id > 0 OR k.company_id IS NOT NULL"
)
# The listed changes whose company no key gathered so far carries.
_UNDECIDED = (
    f"FROM {CHANGES} c STRAIGHT_JOIN {STAGING} s ON s.sync_date = %s AND s.{SOURCE_ROW} = c.source_row "
    f"LEFT JOIN {NEWER_KEYS} k ON k.company_id = s.{KEY_COLUMN} WHERE k.company_id IS NULL"
)
_NEW_ONLY = " AND c.target_id = 0"
# The listed changes whose company some newer date's file carries as a valid row or lacks.
_NOT_LEFT_TO_OLDER = (
    f"STRAIGHT_JOIN {STAGING} s ON s.sync_date = %s AND s.{SOURCE_ROW} = c.source_row "
    f"LEFT JOIN {LEFT_TO_OLDER} k ON k.company_id = s.{KEY_COLUMN} WHERE k.company_id IS NULL"
)


class NewerKeys:
    """Temporary sets of keys, over the publishing session (it must see the session's list of changes)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def open(self) -> None:
        """Create the empty set of keys that the files of newer completed dates carry."""
        self.session.execute(f"DROP TEMPORARY TABLE IF EXISTS {NEWER_KEYS}")
        self.session.execute(f"CREATE TEMPORARY TABLE {NEWER_KEYS} ({_KEY} PRIMARY KEY) ENGINE=InnoDB")

    def add(self, keys: list[str]) -> None:
        """Add keys to the set (PyMySQL sends them as multi-row INSERTs)."""
        if keys:
            with self.session.connection.cursor() as cursor:
                cursor.executemany(f"INSERT IGNORE INTO {NEWER_KEYS} (company_id) VALUES (%s)", [(key,) for key in keys])

    def undecided_keys(self, sync_date: dt.date, *, new_only: bool) -> tuple[set[str], set[str]]:
        """The companies of the listed changes (`new_only`: new companies) no key gathered so far carries: (all, the new)."""
        every: set[str] = set()
        new: set[str] = set()
        # Unbuffered: the rows go straight into the sets.
        with self.session.connection.cursor(pymysql.cursors.SSCursor) as cursor:
            cursor.execute(f"SELECT s.{KEY_COLUMN}, c.target_id = 0 {_UNDECIDED}{_NEW_ONLY if new_only else ''}", (sync_date,))
            for key, is_new in cursor:
                every.add(key)
                if is_new:
                    new.add(key)
        return every, new

    def count_undecided(self, sync_date: dt.date, *, new_only: bool) -> int:
        """How many listed changes (`new_only`: new companies) no key gathered so far carries."""
        row = self.session.fetch_one(f"SELECT COUNT(*) {_UNDECIDED}{_NEW_ONLY if new_only else ''}", (sync_date,))
        return int(row[0]) if row else 0

    def supersede_changes(self, sync_date: dt.date, *, every_change: bool, every_update: bool = False) -> tuple[int, int]:
        """Take out of the list the changes a newer date carries (`every_update`: and every update; `every_change`: all).

        Returns the (inserts, updates) taken.
        """
        parameters: tuple[object, ...]
        if every_change:
            carried, parameters = "", ()
        else:
            carried, parameters = (_CARRIED_OR_IN_THE_TABLE if every_update else _CARRIED_BY_NEWER_DATES), (sync_date,)
        taken = self._take_out(carried, parameters)
        if not every_change:
            self.session.execute(f"DROP TEMPORARY TABLE {NEWER_KEYS}")
        return taken

    # -- delete mode: a company every newer file rejected is the older date's to write -----

    def open_rejected(self) -> None:
        """Create the empty record of the keys each newer date's file rejected."""
        self.session.execute(f"DROP TEMPORARY TABLE IF EXISTS {NEWER_REJECTED}")
        self.session.execute(
            f"CREATE TEMPORARY TABLE {NEWER_REJECTED} ({_KEY}, newer_date DATE, PRIMARY KEY (company_id, newer_date)) "
            "ENGINE=InnoDB"
        )

    def add_rejected(self, newer_date: dt.date, keys: Iterable[str | None]) -> None:
        """Record keys `newer_date`'s file rejected (a key too long for the table never names one of its companies)."""
        rows = [(key, newer_date) for key in keys if key is not None and len(key) <= _KEY_LENGTH]
        if rows:
            with self.session.connection.cursor() as cursor:
                cursor.executemany(f"INSERT IGNORE INTO {NEWER_REJECTED} (company_id, newer_date) VALUES (%s, %s)", rows)

    def count_rejected_by_all(self, newer_dates: int) -> int:
        """How many keys every one of the `newer_dates` files recorded so far rejected."""
        row = self.session.fetch_one(
            f"SELECT COUNT(*) FROM (SELECT company_id FROM {NEWER_REJECTED} GROUP BY company_id HAVING COUNT(*) = %s) every",
            (newer_dates,),
        )
        return int(row[0]) if row else 0

    def keep_rejected_by_all(self, newer_dates: int) -> int:
        """Keep only the keys every one of `newer_dates` files rejected: the older date's to write; how many."""
        self.session.execute(f"DROP TEMPORARY TABLE IF EXISTS {LEFT_TO_OLDER}")
        kept = self.session.execute(
            f"CREATE TEMPORARY TABLE {LEFT_TO_OLDER} (PRIMARY KEY (company_id)) ENGINE=InnoDB "
            f"SELECT company_id FROM {NEWER_REJECTED} GROUP BY company_id HAVING COUNT(*) = %s",
            (newer_dates,),
        )
        self.session.execute(f"DROP TEMPORARY TABLE {NEWER_REJECTED}")
        return kept

    def supersede_all_but_left_to_older(self, sync_date: dt.date) -> tuple[int, int]:
        """Take out of the list every change but those of companies every newer file rejected; (inserts, updates) taken."""
        return self._take_out(_NOT_LEFT_TO_OLDER, (sync_date,))

    def absent_left_to_older(self, sync_date: dt.date, pass_number: int) -> list[tuple[int, str]]:
        """(id, key) of the table's companies every newer file rejected that this pass neither staged nor rejected."""
        rows = self.session.fetch_dicts(
            f"SELECT t.id, t.{KEY_COLUMN} AS company_id FROM {LEFT_TO_OLDER} k "
            f"STRAIGHT_JOIN {TARGET} t ON t.{KEY_COLUMN} = k.company_id "
            f"WHERE k.company_id NOT IN (SELECT s.{KEY_COLUMN} FROM {STAGING} s WHERE s.sync_date = %s) "
            f"AND k.company_id NOT IN ({REJECTED_KEYS})",
            (sync_date, sync_date, pass_number),
        )
        return [(int(row["id"]), str(row["company_id"])) for row in rows]

    def close_left_to_older(self) -> None:
        self.session.execute(f"DROP TEMPORARY TABLE IF EXISTS {LEFT_TO_OLDER}")

    def discard_rejected(self) -> None:
        """Drop what was gathered of the newer files' rejected keys: none is left to the older date."""
        self.session.execute(f"DROP TEMPORARY TABLE IF EXISTS {NEWER_REJECTED}")

    def _take_out(self, joined: str, parameters: tuple[object, ...]) -> tuple[int, int]:
        row = self.session.fetch_one(
            f"SELECT COALESCE(SUM(c.target_id = 0), 0), COALESCE(SUM(c.target_id > 0), 0) FROM {CHANGES} c {joined}",
            parameters,
        )
        inserts, updates = (int(row[0]), int(row[1])) if row else (0, 0)
        self.session.execute(f"DELETE c FROM {CHANGES} c {joined}", parameters)
        return inserts, updates
