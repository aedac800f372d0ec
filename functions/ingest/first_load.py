"""A first load: the file straight into the empty signals table, in one transaction.

With nothing to compare against, staging would only write every row twice. The rows
become visible together at the commit, like a publish; a failure rolls them all back
and the sync stages instead, so that its retry can resume.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from functions.ingest import claims
from functions.ingest.chunks import ObjectDownload, OpenedFile, open_file, prepared_chunks
from functions.ingest.guards import GuardTrip, guard_trips, raise_on_trips, reject_ratio_settled
from functions.ingest.repository import Repository
from functions.ingest.sync_values import ClaimedSync, SyncResult
from functions.shared.errors import TransientError
from functions.shared.settings import IngestSettings

logger = logging.getLogger("upsell_signals.ingest")


@dataclass(frozen=True)
class StageInstead:
    """A first load that did not start (the table is not empty, or the load may not fit in time): the sync stages now."""


@dataclass(frozen=True)
class FirstLoadFailed:
    """A first load that a transient error ended midway (all rolled back): the sync's retry stages instead.

    Staged, a second failure resumes from the committed chunks rather than starting over.
    """

    failure: TransientError


@dataclass(frozen=True)
class _Loaded:
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    stopped_early: GuardTrip | None = None  # reject_ratio settled before the file's end: the rest was not read


def may_load_directly(claimed: ClaimedSync) -> bool:
    """A first load may skip staging, unless the sync is a dry run or follows a holder that died.

    Taking over a lease that ran out, or resuming the claim of its own execution's last run,
    means that run crashed or timed out, perhaps in the middle of such a load: this sync
    stages, so that a second kill at the same timeout resumes from committed chunks.
    """
    claim = claimed.held.claim
    taken_over = claim.own_claim or (claim.previous is not None and claim.previous.get("status") == "started")
    return not (claimed.held.options.dry_run or taken_over)


def load_into_empty_table(
    repository: Repository, claimed: ClaimedSync, settings: IngestSettings, download: ObjectDownload
) -> SyncResult | StageInstead | FirstLoadFailed:
    """Load the file straight into the table if it is empty; else say why the sync stages instead."""
    try:
        return _load_into_empty_table(repository, claimed, settings, download)
    except TransientError as failure:
        return FirstLoadFailed(failure)


def _load_into_empty_table(
    repository: Repository, claimed: ClaimedSync, settings: IngestSettings, download: ObjectDownload
) -> SyncResult | StageInstead:
    held = claimed.held
    # Asked before taking the lock, so that an everyday sync does not queue behind
    # another date's publish only to learn that it must stage; asked again under it.
    with repository.transaction("look for an empty table"):
        if not repository.signals.table_is_empty():
            return StageInstead()
    claims.renew_lease_now(repository, held)
    lock_wait_seconds = claimed.budget.wait_seconds(settings.publish_lock_timeout_seconds)
    with repository.signals.publish_lock(lock_wait_seconds), repository.transaction("first load"):
        # Behind a newer completed date, the publish decides what is left to it (newest_wins.py).
        if not repository.signals.table_is_empty() or repository.ledger.completed_after(held.sync_date):
            return StageInstead()
        opened = open_file(download)
        if not claimed.budget.first_load_fits(opened.num_rows):
            logger.info("the table is empty, but %d rows may not load in the time left: staging", opened.num_rows)
            return StageInstead()
        logger.info("the table is empty: loading the file straight into it")
        loaded = _load_rows(repository, claimed, opened, settings)
        repository.signals.count_a_write()
        read, kept, rejected = loaded.rows_read, loaded.rows_loaded, loaded.rows_rejected
        if loaded.stopped_early is not None:
            trips = [loaded.stopped_early]
        else:
            trips = guard_trips(repository, claimed, settings, rows_read=read, rows_rejected=rejected, rows_loaded=kept)
        if trips:
            repository.connection.rollback()  # the load, and the rejected rows recorded with it
            if claimed.budget.first_load_fits(read):
                _record_rejected_rows(repository, claimed, opened, settings, end_row=read)
            else:
                logger.warning("no time left to read the file again for its %d rejected rows: not recorded", rejected)
            raise_on_trips(trips)
        result = SyncResult(
            sync_date=held.sync_date,
            status="completed",
            s3_key=held.s3_key,
            claim_number=held.claim.claim_number,
            rows_processed=loaded.rows_read,
            rows_rejected=loaded.rows_rejected,
            rows_inserted=loaded.rows_loaded,
            rows_updated=0,
            rows_unchanged=0,
            rows_deleted=0,
            rows_resumed=0,
            duration_ms=held.elapsed_ms(),
        )
        claims.record_completion(repository, held, claimed.info.etag, result)
    logger.info("published", extra={"counts": result.counts()})
    return result


def _record_rejected_rows(
    repository: Repository, claimed: ClaimedSync, opened: OpenedFile, settings: IngestSettings, *, end_row: int
) -> None:
    """Record the rejected rows of the file's first `end_row` rows (those the load read) on their own, once a
    tripped guard rolled the load back: a rejected row is kept.

    The file is read once more rather than its rejects held through the load: a guard trips
    seldom, and memory must not grow with the file.
    """
    pass_number = claimed.held.claim.claim_number
    with prepared_chunks(opened, 0, chunk_rows=settings.chunk_rows, render=False, end_row=end_row) as chunks:
        for chunk in chunks:
            repository.staging.insert_rejected_rows(claimed.held.sync_date, pass_number, chunk.validated.rejected_rows)
    repository.connection.commit()


def _load_rows(repository: Repository, claimed: ClaimedSync, opened: OpenedFile, settings: IngestSettings) -> _Loaded:
    """Every chunk of the file into the table, its rejected rows recorded (inside the first load's transaction).

    Stops early, at a chunk's end, once so many rows are rejected that reject_ratio trips whatever the rest holds.
    """
    rows_loaded = rows_rejected = rows_read = 0
    render = settings.load_method == "local_infile"
    # A first load is a pass of its own, numbered like a staging pass by the claim that runs it.
    pass_number = claimed.held.claim.claim_number
    with prepared_chunks(opened, 0, chunk_rows=settings.chunk_rows, render=render) as chunks:
        for chunk in chunks:
            valid_rows = chunk.validated.valid_rows
            if chunk.load_file is not None:
                repository.signals.load_signals_file(chunk.load_file, valid_rows.num_rows)
            else:
                repository.signals.insert_signal_rows(valid_rows)
            repository.staging.insert_rejected_rows(claimed.held.sync_date, pass_number, chunk.validated.rejected_rows)
            rows_loaded += valid_rows.num_rows
            rows_rejected += len(chunk.validated.rejected_rows)
            rows_read = chunk.end_row
            settled = reject_ratio_settled(
                rows_read=rows_read,
                rows_rejected=rows_rejected,
                rows_in_file=opened.num_rows,
                thresholds=settings.guards,
                options=claimed.held.options,
            )
            if settled is not None:
                logger.warning("stopping early, reject_ratio: %s", settled.message)
                return _Loaded(rows_read, rows_loaded, rows_rejected, stopped_early=settled)
    if rows_read != opened.num_rows:
        raise TransientError(f"read {rows_read} rows of {opened.num_rows}")
    return _Loaded(rows_read, rows_loaded, rows_rejected)
