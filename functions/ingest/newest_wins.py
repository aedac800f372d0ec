"""The newest file wins per company, whatever order the dates arrive in.

A backfill delivers many dates at once and they complete in any order. When a date is
published after a newer one completed, the table must end as if they had come in date order:
a company carried by a newer date's file keeps what that date wrote, and (in delete mode) a
company absent from the newest date is gone, so the older date writes nothing at all. What a
newer file carries is read from the file itself, validated as its own sync validated it (a
rejected row carries nothing: it left the company as it was).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from pathlib import Path

from functions.ingest.columns import KEY_COLUMN
from functions.ingest.parquet_reader import SignalFile
from functions.ingest.repository import PublishPlan, Repository
from functions.ingest.s3_source import SignalObjectStore
from functions.ingest.validation import validate_batch
from functions.ingest.work_space import newer_file_path
from functions.shared.errors import MissingObject

logger = logging.getLogger("upsell_signals.ingest")


class NewerFiles:
    """Reads what the files of newer completed dates carry, to leave those companies to them."""

    def __init__(self, store: SignalObjectStore, work_dir: str, batch_rows: int) -> None:
        self._store = store
        self._work_dir = Path(work_dir)
        self._batch_rows = batch_rows

    def supersede(self, repository: Repository, sync_date: dt.date, plan: PublishPlan, *, delete_missing: bool) -> PublishPlan:
        """The plan without the changes a newer completed date carries (under the publish lock, so none completes meanwhile)."""
        newer = repository.ledger.completed_after(sync_date)
        if not newer:
            return plan
        if delete_missing:
            # The newest date's file is the whole table now: every change of an older one is superseded.
            if plan.into_empty_table:
                superseded = plan.rows_staged
            else:
                inserts, updates = repository.newer_keys.supersede_changes(sync_date, every_change=True)
                superseded = inserts + updates
            logger.info("%s is older than %s (delete mode): its %d changes are left to it", sync_date, newer[-1][0], superseded)
            return dataclasses.replace(
                plan, rows_to_insert=0, rows_to_update=0, rows_to_delete=0, rows_superseded=superseded, into_empty_table=False
            )
        if plan.into_empty_table:
            return plan  # nothing is ever deleted in keep mode: newer files carried nothing that could be here
        repository.newer_keys.open()
        for newer_date, key in newer:
            self._add_keys_of(repository, sync_date, newer_date, key)
        inserts, updates = repository.newer_keys.supersede_changes(sync_date, every_change=False)
        logger.info(
            "%s is older than %d completed date(s) up to %s: %d changes left to them",
            sync_date,
            len(newer),
            newer[-1][0],
            inserts + updates,
        )
        return dataclasses.replace(
            plan,
            rows_to_insert=plan.rows_to_insert - inserts,
            rows_to_update=plan.rows_to_update - updates,
            rows_superseded=inserts + updates,
        )

    def _add_keys_of(self, repository: Repository, sync_date: dt.date, newer_date: dt.date, key: str) -> None:
        """Add the keys of the valid rows of `newer_date`'s file, as it is in S3 now."""
        try:
            info = self._store.describe(key)
        except MissingObject as missing:
            raise MissingObject(
                f"{sync_date} cannot be published: the file of the newer completed date {newer_date} ({key}) is gone, so "
                f"which companies it carries cannot be told, and {sync_date} might write older values over newer ones "
                f"({missing})"
            ) from missing
        path = newer_file_path(self._work_dir, newer_date, info.etag)
        self._store.download(info, path)
        try:
            signal_file = SignalFile(path)
            duplicates = signal_file.duplicate_keys()
            for first_row, batch in signal_file.batches(0, self._batch_rows):
                valid_rows = validate_batch(batch, first_row, duplicates).valid_rows
                repository.newer_keys.add(valid_rows[KEY_COLUMN].to_pylist())
        finally:
            path.unlink(missing_ok=True)
