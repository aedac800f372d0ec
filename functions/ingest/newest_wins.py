"""The newest file wins per company, whatever order the dates arrive in.

A backfill delivers many dates at once and they complete in any order. When a date is
published after a newer one completed, the table must end as if they had come in date order:
a company carried by a newer date's file keeps what that date wrote, and (in delete mode) a
company a newer date lacks is gone. What a newer file carries is read from the file itself,
validated as its own sync validated it: a rejected row carries nothing, it left the company as
it was. So in delete mode the older date writes (or deletes) only the companies every newer
file rejected, and nothing at all when, as on most days, the newer files rejected none.

A newer date's file is read only while it is still the one that date published (its
completed ETag). Once it is gone, or replaced by a correction that has not published, what
that date published cannot be told, and the older date takes no risk: in keep mode it
leaves to the newer dates every company the table has, and inserts only companies none of
them carries; in delete mode it writes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Generator, Iterator
from contextlib import closing
from pathlib import Path

import pyarrow as pa

from functions.ingest.change_detection import FileComparison
from functions.ingest.columns import KEY_COLUMN
from functions.ingest.parquet_reader import SignalFile
from functions.ingest.repository import PublishedDate, PublishPlan, Repository
from functions.ingest.s3_source import SignalObjectStore
from functions.ingest.time_budget import TimeBudget
from functions.ingest.validation import ValidatedBatch, validate_batch
from functions.ingest.work_space import newer_file_path
from functions.shared.errors import IngestError, MissingObject, StaleObject

logger = logging.getLogger("upsell_signals.ingest")

# Up to this many undecided changes, an older date looks for their companies here (about 160
# bytes of Python each, 25 MB at most; 0.2 s a 1M-row file besides its validation); beyond,
# every valid key of each newer file read goes to the server (memory flat; 7 to 8 s more a
# 1M-row file) until few are left. A 1M-row day two changes about 120,000 rows.
CHANGES_LOOKED_FOR_HERE = 150_000


class NewerFiles:
    """Reads what the files of newer completed dates carry, to leave those companies to them."""

    def __init__(self, store: SignalObjectStore, work_dir: str, batch_rows: int) -> None:
        self._store = store
        self._work_dir = Path(work_dir)
        self._batch_rows = batch_rows

    def supersede(
        self,
        repository: Repository,
        sync_date: dt.date,
        plan: PublishPlan,
        *,
        delete_missing: bool,
        pass_number: int,
        comparison: FileComparison | None,
        budget: TimeBudget,
    ) -> PublishPlan:
        """The plan without the changes a newer completed date carries (under the publish lock, so none completes meanwhile).

        Before each newer file after the first, `budget` hands the date over (nothing written)
        when another file as long as the longest so far, and the writes, would not fit.
        """
        newer = repository.ledger.completed_after(sync_date)
        rows_to_write = plan.rows_to_insert + plan.rows_to_update + plan.rows_to_delete
        if not newer or not rows_to_write:
            return plan  # a date that writes nothing has nothing to leave to a newer one
        as_published = self._as_published_newest_first(sync_date, newer, budget, rows_to_write)
        if delete_missing:
            return self._supersede_deleting(
                repository, sync_date, plan, newer, as_published, pass_number=pass_number, comparison=comparison
            )
        if plan.into_empty_table:
            return plan  # nothing is ever deleted in keep mode: newer files carried nothing that could be here
        repository.newer_keys.open()
        every_update, files_read, files_validated = self._gather_carried_changes(
            repository, sync_date, as_published, changes=plan.rows_to_insert + plan.rows_to_update
        )
        inserts, updates = repository.newer_keys.supersede_changes(sync_date, every_change=False, every_update=every_update)
        logger.info(
            "%s is older than %d completed date(s) up to %s: %d changes left to them (%d of their files read, %d validated)",
            sync_date,
            len(newer),
            newer[-1].sync_date,
            inserts + updates,
            files_read,
            files_validated,
        )
        return dataclasses.replace(
            plan,
            rows_to_insert=plan.rows_to_insert - inserts,
            rows_to_update=plan.rows_to_update - updates,
            rows_superseded=inserts + updates,
        )

    def _gather_carried_changes(
        self,
        repository: Repository,
        sync_date: dt.date,
        as_published: Iterator[tuple[PublishedDate, Path | None]],
        *,
        changes: int,
    ) -> tuple[bool, int, int]:
        """Keep mode: gather the changed companies a newer file carries; (every update left to them, files read, validated).

        Newest file first, until no change is undecided. Up to CHANGES_LOOKED_FOR_HERE undecided,
        they are held here as a set, and a file whose key column holds none of them is not
        validated; beyond, every valid key of a file goes to the server, which counts what is left.
        """
        every_update, files_read, files_validated = False, 0, 0
        undecided: set[str] | None = None
        new_keys: set[str] = set()
        if changes <= CHANGES_LOOKED_FOR_HERE:
            undecided, new_keys = repository.newer_keys.undecided_keys(sync_date, new_only=False)
        for _, path in as_published:
            if path is None:
                every_update = True  # which companies it carries cannot be told: any the table has
                if undecided is not None:
                    undecided &= new_keys
            elif undecided is None:
                files_read, files_validated = files_read + 1, files_validated + 1
                for validated in self._validated(path):
                    repository.newer_keys.add(validated.valid_rows[KEY_COLUMN].to_pylist())
            else:
                files_read += 1
                files_validated += self._add_carried(repository, path, undecided)
            if undecided is None and repository.newer_keys.count_undecided(sync_date, new_only=every_update) <= (
                CHANGES_LOOKED_FOR_HERE
            ):
                undecided, new_keys = repository.newer_keys.undecided_keys(sync_date, new_only=every_update)
            if undecided is not None and not undecided:
                break  # every change is left to a newer date already
        return every_update, files_read, files_validated

    def _add_carried(self, repository: Repository, path: Path, undecided: set[str]) -> int:
        """Send the server the `undecided` companies the file carries as valid rows, and forget them; 1 if it was validated."""
        validated_any = 0
        with closing(self._validated(path, looking_for=pa.array(list(undecided), pa.string()))) as batches:
            for validated in batches:
                validated_any = 1
                carried = [key for key in validated.valid_rows[KEY_COLUMN].to_pylist() if key in undecided]
                repository.newer_keys.add(carried)
                undecided.difference_update(carried)
                if not undecided:
                    break
        return validated_any

    def rows_read_first(self, repository: Repository, sync_date: dt.date, *, delete_missing: bool) -> int:
        """The rows of the first newer file an older date's publish reads (newest first); 0 if it reads none.

        A file no longer as published is not read (nor, in delete mode, any after it). An S3
        error other than a missing object counts the file: the publish meets it only if it reads it.
        """
        for published in reversed(repository.ledger.completed_after(sync_date)):
            try:
                if self._store.describe(published.s3_key).etag == published.etag:
                    return repository.runs.rows_published(published.sync_date, published.etag)
            except MissingObject:
                pass
            except IngestError as unknown:
                logger.warning("%s: the file of %s could not be looked up (%s): counted", sync_date, published.sync_date, unknown)
                return repository.runs.rows_published(published.sync_date, published.etag)
            if delete_missing:
                return 0
        return 0

    def _supersede_deleting(
        self,
        repository: Repository,
        sync_date: dt.date,
        plan: PublishPlan,
        newer: list[PublishedDate],
        as_published: Iterator[tuple[PublishedDate, Path | None]],
        *,
        pass_number: int,
        comparison: FileComparison | None,
    ) -> PublishPlan:
        """Delete mode: a newer file decides every company it carries as a valid row or lacks; the rest are this date's."""
        if not self._keys_every_newer_file_rejected(repository, as_published):
            repository.newer_keys.close_left_to_older()
            if plan.into_empty_table:
                superseded = plan.rows_staged
            else:
                inserts, updates = repository.newer_keys.supersede_changes(sync_date, every_change=True)
                superseded = inserts + updates
            logger.info(
                "%s is older than %s (delete mode): its %d changes are left to it", sync_date, newer[-1].sync_date, superseded
            )
            return dataclasses.replace(
                plan, rows_to_insert=0, rows_to_update=0, rows_to_delete=0, rows_superseded=superseded, into_empty_table=False
            )
        if plan.into_empty_table:
            repository.signals.open_change_list(plan.rows_staged)
            repository.signals.list_changes(sync_date)  # every staged row, each one new
        inserts, updates = repository.newer_keys.supersede_all_but_left_to_older(sync_date)
        absent = repository.newer_keys.absent_left_to_older(sync_date, pass_number)
        repository.newer_keys.close_left_to_older()
        if absent and comparison is not None:
            # Unchanged rows were not staged: a company is absent only if no file row equals its row.
            candidates = {row_id for row_id, _ in absent}
            unmatched: set[int] = set()
            for page in comparison.unmatched_pages():
                unmatched.update(candidates.intersection(page))
            absent = [(row_id, key) for row_id, key in absent if row_id in unmatched]
        logger.info(
            "%s is older than %s (delete mode): %d changes left to newer dates; it writes the companies every newer "
            "file rejected, and deletes %d of them",
            sync_date,
            newer[-1].sync_date,
            inserts + updates,
            len(absent),
        )
        return dataclasses.replace(
            plan,
            rows_to_insert=plan.rows_to_insert - inserts,
            rows_to_update=plan.rows_to_update - updates,
            rows_to_delete=len(absent),
            ids_to_delete=tuple(row_id for row_id, _ in absent),
            rows_superseded=inserts + updates,
            into_empty_table=False,
        )

    def _keys_every_newer_file_rejected(
        self, repository: Repository, as_published: Iterator[tuple[PublishedDate, Path | None]]
    ) -> int:
        """Gather the keys every newer file rejected (newest first, stopping once none is left); how many.

        None at all when a newer date's file is not the one it published: what it rejected cannot be told.
        """
        repository.newer_keys.open_rejected()
        files_read = 0
        for published, path in as_published:
            if path is None:
                repository.newer_keys.discard_rejected()
                return 0
            files_read += 1
            for validated in self._validated(path):
                repository.newer_keys.add_rejected(published.sync_date, (row.company_id for row in validated.rejected_rows))
            if not repository.newer_keys.count_rejected_by_all(files_read):
                break
        return repository.newer_keys.keep_rejected_by_all(files_read)

    def _as_published_newest_first(
        self, sync_date: dt.date, newer: list[PublishedDate], budget: TimeBudget, rows_to_write: int
    ) -> Iterator[tuple[PublishedDate, Path | None]]:
        """Each newer date and its file as published (None if not), newest first; the budget asks before each after the first."""
        longest = 0.0
        for files_looked_at, published in enumerate(reversed(newer)):
            if files_looked_at:
                budget.stop_before_another_newer_file_if_short(longest, rows_to_write, files_read=files_looked_at)
            started = time.monotonic()
            yield published, self._file_as_published(sync_date, published)
            longest = max(longest, time.monotonic() - started)

    def _file_as_published(self, sync_date: dt.date, published: PublishedDate) -> Path | None:
        """The newer date's file, downloaded, if S3 still has the one it published; None (and why, logged) if not."""
        try:
            info = self._store.describe(published.s3_key)
            if info.etag != published.etag:
                raise StaleObject(f"ETag {info.etag} there now, {published.etag} published")
            path = newer_file_path(self._work_dir, published.sync_date, info.etag)
            self._store.download(info, path)
        except (MissingObject, StaleObject) as unknown:
            logger.warning(
                "%s: the file of the newer date %s is not the one it published (%s): which companies it carries cannot "
                "be told, so %s writes none it may have published",
                sync_date,
                published.sync_date,
                unknown,
                sync_date,
            )
            return None
        return path

    def _validated(self, path: Path, looking_for: pa.Array | None = None) -> Generator[ValidatedBatch, None, None]:
        """The file's rows, validated as its own sync validated them; the file is removed after.

        `looking_for`: none at all when the key column alone shows that no row has one of these keys.
        """
        try:
            with closing(SignalFile(path)) as signal_file:
                if looking_for is not None and not signal_file.key_column_may_hold(looking_for):
                    return
                duplicates = signal_file.duplicate_keys()
                for first_row, batch in signal_file.batches(0, self._batch_rows):
                    yield validate_batch(batch, first_row, duplicates)
        finally:
            path.unlink(missing_ok=True)
