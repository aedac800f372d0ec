"""A publish's list of changes, built chunk by chunk while the file stages.

Before it writes, a publish lists the staged rows that are new or changed (see
`SignalsTable.plan_publish`). Done at the end, that pass waits for staging to
finish; done for each chunk as soon as it is committed, on a second connection, it
runs in the server while the next chunk loads: the server's second core at work.

The second connection holds the publish lock from before the file is compared with
the table (stage.py), so no other publish can change the table under the list, and then
publishes itself (the list is a temporary table of its session).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

from functions.ingest.repository import Repository

logger = logging.getLogger("upsell_signals.ingest")


class ChangeLister:
    """Lists committed chunks' new and changed rows in the background, on its own connection."""

    def __init__(self, repository: Repository, sync_date: dt.date) -> None:
        self.repository = repository  # holds the publish lock and the list: publish on it
        self._sync_date = sync_date
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="list-changes")
        self._pending: list[Future[int]] = []
        self._rows_listed = 0

    def list_rows(self, from_row: int, to_row: int) -> None:
        """Queue the listing of the staged rows numbered from_row up to to_row.

        Raises here, in the caller's thread, the error of an earlier listing that failed.
        """
        self._collect(wait=False)
        self._pending.append(self._worker.submit(self._list, from_row, to_row))

    def finish(self) -> int:
        """Wait for every queued listing; how many rows the list holds."""
        self._collect(wait=True)
        return self._rows_listed

    def _list(self, from_row: int, to_row: int) -> int:
        # Read committed: under the session's repeatable read an INSERT ... SELECT locks
        # every row it reads, the gap after the last staged row included, and the next
        # chunk's load would wait on it.
        with self.repository.transaction(f"list changes of rows {from_row}-{to_row - 1}", read_committed=True):
            return self.repository.signals.list_changes(self._sync_date, from_row, to_row)

    def _collect(self, *, wait: bool) -> None:
        while self._pending and (wait or self._pending[0].done()):
            self._rows_listed += self._pending.pop(0).result()

    def stop(self) -> None:
        """Wait for a listing under way; drop the queued ones."""
        self._worker.shutdown(wait=True, cancel_futures=True)


@contextmanager
def listing_alongside_staging(
    repository: Repository, sync_date: dt.date, *, file_rows: int, rows_staged: int
) -> Iterator[ChangeLister]:
    """A ChangeLister on `repository` (which holds the publish lock), with the rows staged so far queued."""
    with repository.transaction("open the list of changes"):
        repository.signals.open_change_list(file_rows)
    lister = ChangeLister(repository, sync_date)
    try:
        if rows_staged:
            lister.list_rows(0, rows_staged)  # what an earlier run staged, in one statement
        yield lister
    finally:
        lister.stop()
