"""Staging a file in committed chunks (resuming what an earlier run committed), ready for its publish; and the clean-up.

Each chunk's rows, rejects and progress commit together, so a retry resumes at the last
committed row. While the file stages, a second connection lists each committed chunk's
changes for the publish when it can take the publish lock (see change_listing).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pymysql

from functions.ingest import claims
from functions.ingest.change_detection import FileComparison
from functions.ingest.change_listing import ChangeLister, listing_alongside_staging
from functions.ingest.chunks import ObjectDownload, OpenedFile, PreparedChunk, open_file, prepared_chunks
from functions.ingest.compared_pass import compared_pass, start_again
from functions.ingest.guards import stop_if_reject_ratio_settled
from functions.ingest.repository import Repository, StagingProgress
from functions.ingest.sync_values import ClaimedSync
from functions.shared.errors import TransientError
from functions.shared.settings import IngestSettings

logger = logging.getLogger("upsell_signals.ingest")

ABANDONED_STAGING_DAYS = 7
PROGRESS_LOG_CHUNKS = 20  # 500,000 rows at the default chunk size


@dataclass(frozen=True)
class StagedPass:
    """A complete staging pass, as its publish takes it."""

    repository: Repository  # the connection to publish on, which holds the publish lock (and the list, if it listed)
    progress: StagingProgress
    rows_resumed: int  # rows an earlier run had staged
    rows_listed: int | None  # the changes listed already, if they were
    comparison: FileComparison | None  # None: every row is staged (the table was empty, or most rows differ)


@contextmanager
def staged_pass(
    repository: Repository,
    claimed: ClaimedSync,
    progress: StagingProgress,
    settings: IngestSettings,
    *,
    download: ObjectDownload,
    connect: Callable[[], pymysql.Connection[Any]],
    newer_rows: int = 0,
) -> Iterator[StagedPass]:
    """The pass staged to its end: the file compared with the table, then the rows that differ staged and listed.

    A second connection takes the publish lock before the compare and holds it through the
    publish, which runs inside the block: no other publish changes the table between.
    `newer_rows`: the rows of a newer date's file the publish reads (NewerFiles.rows_read_first),
    which its time budget counts; more files only when that one leaves some change undecided.
    An in-process retry (`claimed.retried`) hands over before a publish that would not fit
    even when it finds the staging complete; a run's first attempt publishes that regardless.
    """
    opened = open_file(download)
    claimed.budget.refuse_a_publish_no_run_can_hold(opened.num_rows, newer_rows)
    if not progress.complete:
        # A pass an earlier run stopped early (reject_ratio settled) stops again before reading a row.
        stop_if_reject_ratio_settled(claimed, settings, progress.rows_read, progress.rows_rejected, opened.num_rows)
    publisher = Repository(connect())
    comparison: FileComparison | None = None
    try:
        lock_wait_seconds = claimed.budget.wait_seconds(settings.publish_lock_timeout_seconds)
        publisher.signals.hold_publish_lock(lock_wait_seconds)
        table_is_empty = publisher.signals.table_is_empty()
        if table_is_empty and progress.rows_read and progress.compared_generation is not None:
            # The pass staged only rows that differed from a table emptied since: every row is new now.
            progress = start_again(repository, claimed, "the table was emptied since this pass compared it")
        if not table_is_empty:
            comparison, progress = compared_pass(
                repository, publisher, claimed=claimed, progress=progress, opened=opened, settings=settings
            )
        rows_resumed = progress.rows_read
        if progress.complete:
            if claimed.retried:
                claimed.budget.stop_before_publish_if_short(progress.rows_staged, newer_rows)
            yield StagedPass(publisher, progress, rows_resumed=rows_resumed, rows_listed=None, comparison=comparison)
            return
        with repository.transaction("note the file's rows"):
            repository.staging.record_rows_in_file(claimed.held.sync_date, claimed.info.etag, opened.num_rows)
        if table_is_empty:  # every row is new: nothing to list
            progress = stage_file(repository, claimed, progress, opened, settings, lister=None, comparison=None)
            claimed.budget.stop_before_publish_if_short(progress.rows_staged, newer_rows)
            yield StagedPass(publisher, progress, rows_resumed=rows_resumed, rows_listed=None, comparison=None)
            return
        # Sized for every row an earlier run may have staged, and the rows that differ after it.
        list_rows = comparison.rows_to_stage + progress.rows_read if comparison is not None else opened.num_rows
        with listing_alongside_staging(
            publisher, claimed.held.sync_date, file_rows=list_rows, rows_staged=progress.rows_read
        ) as lister:
            progress = stage_file(repository, claimed, progress, opened, settings, lister=lister, comparison=comparison)
            # A run that found staging complete publishes regardless: see TimeBudget.
            claimed.budget.stop_before_publish_if_short(
                comparison.rows_to_stage if comparison is not None else progress.rows_staged, newer_rows
            )
            listed = lister.finish()
            yield StagedPass(publisher, progress, rows_resumed=rows_resumed, rows_listed=listed, comparison=comparison)
    finally:
        # Ending the session releases the lock and drops the list with it.
        publisher.close()
        if comparison is not None:
            comparison.remove()


def stage_file(
    repository: Repository,
    claimed: ClaimedSync,
    progress: StagingProgress,
    opened: OpenedFile,
    settings: IngestSettings,
    *,
    lister: ChangeLister | None,
    comparison: FileComparison | None,
) -> StagingProgress:
    """Stage the file from the last committed row on, one committed chunk at a time (with a compare: the rows that differ).

    Once so many rows are rejected that reject_ratio trips whatever the rest holds (and it is
    not overridden), the pass stops at that chunk's end and the date fails with the guard:
    the chunks committed so far, their rejected rows with them, stay for an override to resume.
    A compare that stopped early for the same reason bounds the chunks to the rows it read.
    """
    if progress.rows_read:
        logger.info("resuming staging at row %d (%d chunks committed)", progress.rows_read, progress.chunks_committed)
    rows_read, rows_rejected = progress.rows_read, progress.rows_rejected
    chunks_this_run = 0
    render = settings.load_method == "local_infile"
    rows_needed = comparison.rows_needed if comparison is not None else None
    end_row = comparison.stopped_at_row if comparison is not None else None
    with prepared_chunks(
        opened, progress.rows_read, chunk_rows=settings.chunk_rows, render=render, rows_needed=rows_needed, end_row=end_row
    ) as chunks:
        for chunk in chunks:
            if chunks_this_run:  # every run commits a chunk at least: hand-overs always make progress
                # What the pass compared against, and the ETag, too: a pass started again because a
                # publish changed the table (a new generation), or a correction, restarts at row 0,
                # which is progress, not a run stopping where the last did.
                of_the_pass = f"{_what_the_pass_stages(progress)}, ETag {claimed.info.etag}"
                claimed.budget.stop_if_out_of_time(f"staging at row {rows_read} of {opened.num_rows} ({of_the_pass})")
            commit_chunk(repository, claimed, chunk, rows_read, progress.pass_number)
            rows_read = chunk.end_row
            rows_rejected += len(chunk.validated.rejected_rows)
            chunks_this_run += 1
            if chunks_this_run % PROGRESS_LOG_CHUNKS == 0:
                log_progress(claimed, rows_read - progress.rows_read, rows_read, opened.num_rows)
            stop_if_reject_ratio_settled(claimed, settings, rows_read, rows_rejected, opened.num_rows)
            if lister is not None and chunk.validated.valid_rows.num_rows:
                lister.list_rows(chunk.first_row, rows_read)
    if rows_read != opened.num_rows:
        raise TransientError(f"read {rows_read} rows of {opened.num_rows}")
    return finish_staging(repository, claimed, rows_read, settings.load_method)


def _what_the_pass_stages(progress: StagingProgress) -> str:
    if progress.compared_generation is None:
        return "every row"
    return f"the rows that differ from table generation {progress.compared_generation}"


def commit_chunk(repository: Repository, claimed: ClaimedSync, chunk: PreparedChunk, rows_read: int, pass_number: int) -> None:
    """Stage one chunk's rows and rejects and move the progress, in one transaction."""
    sync_date = claimed.held.sync_date
    validated = chunk.validated
    with repository.transaction(f"stage rows {chunk.first_row}-{chunk.end_row - 1}"):
        if not validated.valid_rows.num_rows:
            pass  # every row equals the table's, or is rejected
        elif chunk.load_file is not None:
            repository.staging.load_staging_file(sync_date, chunk.load_file, validated.valid_rows.num_rows)
        else:
            repository.staging.insert_staging_rows(sync_date, validated.valid_rows)
        repository.staging.insert_rejected_rows(sync_date, pass_number, validated.rejected_rows)
        repository.staging.advance_progress(
            sync_date,
            claimed.info.etag,
            from_row=rows_read,
            to_row=chunk.end_row,
            staged=chunk.rows_read - len(validated.rejected_rows),  # the file's valid rows, staged or equal to the table's
            rejected=len(validated.rejected_rows),
        )
        # Last, so the date's row is locked only for the commit, not the whole chunk:
        # a claim meanwhile is answered at once.
        claims.renew_lease(repository, claimed.held)


def finish_staging(repository: Repository, claimed: ClaimedSync, rows_read: int, load_method: str) -> StagingProgress:
    """Mark the pass complete (while we hold the date); its final counts."""
    sync_date, etag = claimed.held.sync_date, claimed.info.etag
    with repository.transaction("finish staging"):
        claims.renew_lease(repository, claimed.held)
        repository.staging.finish_staging(sync_date, etag, rows_read)
    staged = repository.staging.staging_progress(sync_date, etag)
    if staged is None or not staged.complete:
        raise AssertionError(f"staging of {sync_date} was marked complete but reads otherwise")
    logger.info(
        "staged %d rows, rejected %d, in %d chunks",
        staged.rows_staged,
        staged.rows_rejected,
        staged.chunks_committed,
        extra={"rows_read": staged.rows_read, "load_method": load_method},
    )
    return staged


def log_progress(claimed: ClaimedSync, rows_this_run: int, rows_read: int, file_rows: int) -> None:
    """A line every few chunks, so that a long sync is not silent until its end."""
    elapsed = time.monotonic() - claimed.held.started
    rate = rows_this_run / elapsed if elapsed > 0 else 0.0
    left = f"{(file_rows - rows_read) / rate:.0f}s" if rate else "unknown"
    logger.info(
        "staged %d of %d rows (%.0f%%) in %.0fs; about %s of staging left",
        rows_read,
        file_rows,
        100 * rows_read / max(file_rows, 1),
        elapsed,
        left,
        extra={"rows_read": rows_read, "rows_in_file": file_rows, "rows_per_second": round(rate)},
    )


def drop_staging(repository: Repository, claimed: ClaimedSync, pass_number: int) -> None:
    """Drop this pass's staging, unless a newer pass or another execution owns it now, and any abandoned for a week."""
    # The DDL waits behind other dates' open publishes no longer than the run has left.
    ddl_wait_seconds = claimed.budget.seconds_before_margin()
    held = claimed.held
    if not repository.staging.drop_pass(
        held.sync_date, claimed.info.etag, pass_number, held.holder_token, ddl_wait_seconds=ddl_wait_seconds
    ):
        logger.info("staging of %s belongs to a newer pass or another execution now: left in place", held.sync_date)
    # A date whose sync failed for good keeps its staging for a resume; after a week
    # nobody will resume it, so the next successful sync clears it away.
    for abandoned_date in repository.staging.drop_abandoned_staging(ABANDONED_STAGING_DAYS, ddl_wait_seconds=ddl_wait_seconds):
        logger.info("dropped staging abandoned since a week or more: %s", abandoned_date)
