"""Publish a staged pass: plan exact counts, judge the guards, write in one transaction, record the completion."""

from __future__ import annotations

import datetime as dt
import logging
import time

from functions.ingest import claims
from functions.ingest.change_detection import FileComparison
from functions.ingest.guards import GuardTrip, guard_trips, raise_on_trips
from functions.ingest.newest_wins import NewerFiles
from functions.ingest.repository import PublishPlan, Repository, StagingProgress
from functions.ingest.sync_values import ClaimedSync, SyncResult
from functions.shared.errors import ClaimLost, TransientError
from functions.shared.settings import IngestSettings

logger = logging.getLogger("upsell_signals.ingest")


def publish(
    repository: Repository,
    claimed: ClaimedSync,
    progress: StagingProgress,
    settings: IngestSettings,
    *,
    newer_files: NewerFiles,
    rows_resumed: int,
    rows_listed: int | None = None,
    comparison: FileComparison | None = None,
) -> SyncResult:
    """Plan exact counts, leave to newer dates what they carry, check every guard, then write (or, for a dry run, only count).

    `rows_listed`: this connection holds the publish lock and has listed the changes already.
    """
    held = claimed.held
    dry_run = held.options.dry_run
    delete_missing = settings.missing_rows == "delete"
    claims.renew_lease_now(repository, held)
    lock_wait_seconds = claimed.budget.wait_seconds(settings.publish_lock_timeout_seconds)
    with repository.signals.publish_lock(lock_wait_seconds), repository.transaction("publish"):
        started = time.monotonic()
        plan = repository.signals.plan_publish(
            held.sync_date,
            progress.rows_staged,
            pass_number=progress.pass_number,
            delete_missing=delete_missing,
            rows_listed=rows_listed,
        )
        plan = newer_files.supersede(
            repository,
            held.sync_date,
            plan,
            delete_missing=delete_missing,
            pass_number=progress.pass_number,
            comparison=comparison,
            budget=claimed.budget,
        )
        trips = guard_trips(
            repository,
            claimed,
            settings,
            rows_read=progress.rows_read,
            rows_rejected=progress.rows_rejected,
            rows_loaded=progress.rows_staged,
            delete_missing=delete_missing,
            rows_to_delete=plan.rows_to_delete,
            table_rows=plan.table_rows,
        )
        if dry_run and not repository.ledger.release_dry_run(held.sync_date, held.holder_token, held.claim.previous):
            # A real sync took the date meanwhile: this dry run's count is of a state that is going away.
            raise ClaimLost(f"{held.sync_date} was taken over by a real sync during this dry run's count")
        if not dry_run:
            raise_on_trips(trips)
            _write(repository, held.sync_date, plan, progress.pass_number, comparison)
        repository.signals.discard_plan()
        result = _result(claimed, progress, plan, trips, rows_resumed=rows_resumed)
        claims.record_completion(repository, held, claimed.info.etag, result)
    if not dry_run:
        # The rate `PUBLISH_ROWS_PER_SECOND` plans with, as this database achieved it (lock held to commit).
        seconds = time.monotonic() - started
        logger.info(
            "published",
            extra={
                "counts": result.counts(),
                "publish_seconds": round(seconds, 3),
                "publish_rows_per_second": round(progress.rows_staged / seconds) if seconds > 0 else None,
            },
        )
    return result


def _write(
    repository: Repository, sync_date: dt.date, plan: PublishPlan, pass_number: int, comparison: FileComparison | None
) -> None:
    """Apply the plan; each statement checks its own count against it, and a mismatch rolls back."""
    repository.signals.count_a_write()
    repository.signals.update_changed(sync_date, plan)
    repository.signals.insert_new(sync_date, plan)
    if plan.ids_to_delete is not None:
        deleted = repository.absent_rows.delete_ids(plan.ids_to_delete)
    elif plan.rows_to_delete:
        unmatched = comparison.unmatched_pages() if comparison is not None else None
        deleted = repository.absent_rows.delete(sync_date, pass_number, unmatched)
    else:
        return
    if deleted != plan.rows_to_delete:
        raise TransientError(f"deleted {deleted} rows, the plan counted {plan.rows_to_delete}: the table changed meanwhile")


def _result(
    claimed: ClaimedSync, progress: StagingProgress, plan: PublishPlan, trips: list[GuardTrip], *, rows_resumed: int
) -> SyncResult:
    """The answer of a publish, or of a dry run with the guards it would trip."""
    dry_run = claimed.held.options.dry_run
    guards_tripped = [trip.guard for trip in trips] if dry_run else []
    would_trip = f"; would trip {', '.join(guards_tripped)}" if trips else ""
    return SyncResult(
        sync_date=claimed.held.sync_date,
        status="dry_run" if dry_run else "completed",
        s3_key=claimed.held.s3_key,
        claim_number=claimed.held.claim.claim_number,
        rows_processed=progress.rows_read,
        rows_rejected=progress.rows_rejected,
        rows_resumed=rows_resumed,
        rows_inserted=plan.rows_to_insert,
        rows_updated=plan.rows_to_update,
        rows_unchanged=plan.rows_unchanged,
        rows_deleted=plan.rows_to_delete,
        rows_superseded=plan.rows_superseded,
        duration_ms=claimed.held.elapsed_ms(),
        reason="dry run: nothing published" + would_trip if dry_run else None,
        guards_tripped=guards_tripped,
    )
