"""The names only the ingest's SQL uses: its temporary tables, named locks and the server's error codes.

The permanent tables' names are shared with the status queries: functions/shared/tables.py.
"""

from __future__ import annotations

import datetime as dt

from functions.shared import contract
from functions.shared.tables import STAGING

CHANGES = "publish_changes"  # temporary: the staged rows a publish will insert or update
STAGED_KEYS = "staged_keys"  # temporary: the keys a delete-mode publish keeps
UNMATCHED = "unmatched_rows"  # temporary: ids of table rows no file row equals (a delete's candidates)
NEWER_KEYS = "newer_keys"  # temporary: the keys that files of newer completed dates carry
NEWER_REJECTED = "newer_rejected_keys"  # temporary: the keys each newer date's file rejected, by date
LEFT_TO_OLDER = "keys_left_to_older"  # temporary: the keys every newer date's file rejected

PUBLISH_LOCK = contract.PUBLISH_LOCK  # the migrator takes it too
STAGING_LOCK_TIMEOUT_SECONDS = 60

LOCK_WAIT_TIMEOUT = 1205  # also what FOR UPDATE NOWAIT answers on a locked row
DUPLICATE_KEY = 1062
NO_PARTITION = 1526  # a row for a partition that does not exist


def staging_lock(sync_date: dt.date) -> str:
    """The named lock that serialises the DDL of one date's staging partition."""
    return f"{STAGING}:{sync_date.isoformat()}"


def partition_name(sync_date: dt.date) -> str:
    return f"p{sync_date:%Y%m%d}"
