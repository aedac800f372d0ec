"""Before a pass stages: the file compared with the table, when that pays, and the pass to go on with.

A day two stages only the rows that differ (change_detection.py). A pass resumed after a
publish changed the table, or after the table was emptied, stages again from the first row.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from functions.ingest.change_detection import FileComparison, changed_share_of_a_sample, compare_file
from functions.ingest.chunks import OpenedFile
from functions.ingest.fingerprint_spills import spill_bytes
from functions.ingest.guards import reject_ratio_settled
from functions.ingest.repository import Repository, StagingProgress
from functions.ingest.sync_values import ClaimedSync
from functions.ingest.work_space import ensure_room, load_file_scratch_bytes, no_space_is_permanent
from functions.shared.errors import PartitionWaitExceeded
from functions.shared.settings import IngestSettings

logger = logging.getLogger("upsell_signals.ingest")

# The compare costs about what staging half the file's rows does (docs/performance.md):
# above this share of changed rows, staging every row is the cheaper way.
COMPARE_PAYS_UP_TO = 0.5


def compared_pass(
    repository: Repository,
    publisher: Repository,
    *,
    claimed: ClaimedSync,
    progress: StagingProgress,
    opened: OpenedFile,
    settings: IngestSettings,
) -> tuple[FileComparison | None, StagingProgress]:
    """The file compared with the table (None: every row is staged instead), and the pass to go on with.

    A new pass compares only when a sample says most rows are unchanged: when most
    differ, staging them all costs less than the compare would. A pass resumed with the
    table as it compared it (no publish since: the generation agrees) compares only the
    rows it has yet to stage; otherwise the whole file is compared, and a pass that misses
    a row that now differs starts again. A delete needs the whole file compared, to know
    which companies it lacks.
    """
    if progress.rows_read and progress.compared_generation is None:
        return None, progress  # a pass that stages every row goes on doing so
    if not opened.num_rows:
        return None, progress  # an empty file (published only by an override): nothing to compare, every table row absent
    if not progress.rows_read:
        changed_share = changed_share_of_a_sample(opened, publisher.fingerprints, settings.chunk_rows)
        if changed_share is not None and changed_share > COMPARE_PAYS_UP_TO:
            logger.info(
                "%.0f%% of a sample of the file differs from the table: staging every row, without a compare",
                100 * changed_share,
                extra={"sample_changed_share": round(changed_share, 3)},
            )
            return None, progress
    generation = publisher.signals.generation()
    deleting = settings.missing_rows == "delete"
    as_compared = progress.compared_generation == generation and not deleting
    # The rows rejected before the compare's first row: those of the rows staged already, when it starts after them.
    rejected_before = progress.rows_rejected if as_compared else 0

    def stop_reading(end_row: int, rows_rejected: int) -> bool:
        figures = {"rows_read": end_row, "rows_rejected": rejected_before + rows_rejected, "rows_in_file": opened.num_rows}
        return reject_ratio_settled(**figures, thresholds=settings.guards, options=claimed.held.options) is not None

    # The spills sit beside the download until staging ends, with the load files.
    work_dir = opened.path.parent
    table_rows = publisher.fingerprints.estimated_rows()
    needed = spill_bytes(opened.num_rows, table_rows, with_unmatched=deleting) + load_file_scratch_bytes(settings)
    ensure_room(work_dir, needed, "the compare's spills and the load files")
    # This session waits through the compare (the publisher's reads the table): kept from the
    # server's idle timeout, or a compare longer than it could never be followed by a write.
    with repository.session.kept_alive(), no_space_is_permanent(work_dir, "the compare's spills"):
        comparison = compare_file(
            opened,
            publisher.fingerprints,
            opened.path,
            chunk_rows=settings.chunk_rows,
            from_row=progress.rows_read if as_compared else 0,
            with_unmatched=deleting,
            # A pass that read every row is published whole (its guards judge every row): read it
            # all, also when a kill came between its last chunk's commit and its finish.
            stop_reading=None if progress.complete or progress.rows_read >= opened.num_rows else stop_reading,
        )
    if not as_compared:
        progress = _resumable(repository, claimed, progress, comparison)
    with repository.transaction("note the table generation compared at"):
        repository.staging.record_compared(claimed.held.sync_date, claimed.info.etag, generation)
    return comparison, replace(progress, compared_generation=generation)


def _resumable(
    repository: Repository, claimed: ClaimedSync, progress: StagingProgress, comparison: FileComparison | None
) -> StagingProgress:
    """The pass to go on with: the one staged so far if it holds every row that now differs, else a new one.

    Between two runs the publish lock was free: another date's publish, or a person, may
    have changed rows this pass found equal and did not stage.
    """
    if comparison is None or not progress.rows_read:
        return progress
    expected = comparison.rows_to_stage_before(progress.rows_read)
    if repository.staging.count_staged(claimed.held.sync_date, expected) == len(expected):
        return progress
    return start_again(repository, claimed, "the table changed since this pass staged")


def start_again(repository: Repository, claimed: ClaimedSync, why: str) -> StagingProgress:
    """A new pass, from the file's first row."""
    logger.info("%s: staging again from the first row", why)
    return start_pass(repository, claimed)


def start_pass(repository: Repository, claimed: ClaimedSync) -> StagingProgress:
    """A fresh pass of the claimed file, numbered by its claim; handed over if its partition waits out the time left.

    The partition's DDL waits for the staging table behind another date's open publish. That
    publish ends within a run, so the date's next run finds the table free; waiting longer
    here would end in Lambda's kill mid-wait, with every staging statement queued behind it.
    """
    held = claimed.held
    try:
        return repository.staging.start_staging(
            held.sync_date,
            claimed.info.etag,
            held.claim.claim_number,
            held.holder_token,
            ddl_wait_seconds=claimed.budget.seconds_before_margin(),
        )
    except PartitionWaitExceeded as error:
        claimed.budget.stop_after_waiting("waiting for the staging table to start a pass", str(error))
