"""A first load: the file straight into the empty signals table, in one transaction.

With nothing to compare against, staging would only write every row twice. The rows
become visible together at the commit, like a publish; a failure rolls them all back
and the next attempt stages instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from functions.ingest import claims
from functions.ingest.attempt import ClaimedAttempt, SyncResult
from functions.ingest.chunks import OpenedFile, open_file, prepared_chunks
from functions.ingest.publish import guard_trips, raise_on_trips
from functions.ingest.repository import Repository
from functions.ingest.s3_source import SignalObjectStore
from functions.ingest.work_space import LEFTOVER_AGE_SECONDS
from functions.shared.errors import TransientError
from functions.shared.settings import IngestSettings

logger = logging.getLogger("upsell_signals.ingest")


@dataclass(frozen=True)
class _Loaded:
    rows_read: int
    rows_loaded: int
    rows_rejected: int


def may_load_directly(attempt: ClaimedAttempt) -> bool:
    """A first load may skip staging, unless an attempt at it already died or failed.

    Taking over a lease that ran out means the last holder crashed or timed out,
    perhaps in the middle of such a load: this attempt stages, so that it can resume.
    """
    previous = attempt.held.claim.previous
    taken_over = previous is not None and previous.get("status") == "started"
    return not (attempt.held.options.dry_run or attempt.direct_load_failed or taken_over)


def load_into_empty_table(
    repository: Repository, attempt: ClaimedAttempt, settings: IngestSettings, store: SignalObjectStore
) -> SyncResult | None:
    """Load the file straight into the table if it is empty; None when it is not (or the load may not fit in time).

    A transient failure marks the attempt, so that its retry stages and can resume.
    """
    try:
        return _load_into_empty_table(repository, attempt, settings, store)
    except TransientError:
        attempt.direct_load_failed = True
        raise


def _load_into_empty_table(
    repository: Repository, attempt: ClaimedAttempt, settings: IngestSettings, store: SignalObjectStore
) -> SyncResult | None:
    held = attempt.held
    # Asked before taking the lock, so that an everyday sync does not queue behind
    # another date's publish only to learn that it must stage; asked again under it.
    with repository.transaction("look for an empty table"):
        if not repository.signals.table_is_empty():
            return None
    claims.renew_lease_now(repository, held)
    lock_wait_seconds = attempt.budget.wait_seconds(settings.publish_lock_timeout_seconds)
    with repository.signals.publish_lock(lock_wait_seconds), repository.transaction("first load"):
        # Behind a newer completed date, the publish decides what is left to it (newest_wins.py).
        if not repository.signals.table_is_empty() or repository.ledger.completed_after(held.sync_date):
            return None
        opened = open_file(attempt, store, settings.work_dir, leftovers_after=LEFTOVER_AGE_SECONDS)
        if not attempt.budget.first_load_fits(opened.num_rows):
            logger.info("the table is empty, but %d rows may not load in the time left: staging", opened.num_rows)
            return None
        logger.info("the table is empty: loading the file straight into it")
        loaded = _load_rows(repository, attempt, opened, settings)
        read, kept, rejected = loaded.rows_read, loaded.rows_loaded, loaded.rows_rejected
        raise_on_trips(guard_trips(repository, attempt, settings, rows_read=read, rows_rejected=rejected, rows_loaded=kept))
        result = SyncResult(
            sync_date=held.sync_date,
            status="completed",
            s3_key=held.s3_key,
            attempt=held.claim.attempt,
            rows_processed=loaded.rows_read,
            rows_rejected=loaded.rows_rejected,
            rows_inserted=loaded.rows_loaded,
            rows_updated=0,
            rows_unchanged=0,
            rows_deleted=0,
            rows_resumed=0,
            duration_ms=held.elapsed_ms(),
        )
        claims.record_completion(repository, held, attempt.info.etag, result)
    logger.info("published", extra={"counts": result.counts()})
    logger.info("sync %s", result.status, extra={"result": result.as_dict()})
    return result


def _load_rows(repository: Repository, attempt: ClaimedAttempt, opened: OpenedFile, settings: IngestSettings) -> _Loaded:
    """Every chunk of the file into the table, its rejected rows recorded (inside the first load's transaction)."""
    rows_loaded = rows_rejected = rows_read = 0
    render = settings.load_method == "local_infile"
    with prepared_chunks(opened, 0, chunk_rows=settings.chunk_rows, render=render) as chunks:
        for chunk in chunks:
            valid_rows = chunk.validated.valid_rows
            if chunk.load_file is not None:
                repository.signals.load_signals_file(chunk.load_file, valid_rows.num_rows)
            else:
                repository.signals.insert_signal_rows(valid_rows)
            repository.staging.insert_rejected_rows(
                attempt.held.sync_date, attempt.held.claim.attempt, chunk.validated.rejected_rows
            )
            rows_loaded += valid_rows.num_rows
            rows_rejected += len(chunk.validated.rejected_rows)
            rows_read = chunk.end_row
    if rows_read != opened.num_rows:
        raise TransientError(f"read {rows_read} rows of {opened.num_rows}")
    return _Loaded(rows_read, rows_loaded, rows_rejected)
