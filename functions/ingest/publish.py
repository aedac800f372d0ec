"""Publish a staged pass: plan exact counts, judge the guards, write in one transaction, record the completion."""

from __future__ import annotations

import datetime as dt
import logging

from functions.ingest import claims
from functions.ingest.attempt import ClaimedAttempt, SyncResult
from functions.ingest.guards import GuardFigures, GuardTrip, evaluate_guards
from functions.ingest.newest_wins import NewerFiles
from functions.ingest.repository import PublishPlan, Repository, StagingProgress
from functions.shared.errors import ClaimLost, GuardTripped, TransientError
from functions.shared.settings import IngestSettings

logger = logging.getLogger("upsell_signals.ingest")


def publish(
    repository: Repository,
    attempt: ClaimedAttempt,
    progress: StagingProgress,
    settings: IngestSettings,
    *,
    newer_files: NewerFiles,
    rows_resumed: int,
    rows_listed: int | None = None,
) -> SyncResult:
    """Plan exact counts, leave to newer dates what they carry, check every guard, then write (or, for a dry run, only count).

    `rows_listed`: this connection holds the publish lock and has listed the changes already.
    """
    held = attempt.held
    dry_run = held.options.dry_run
    delete_missing = settings.missing_rows == "delete"
    claims.renew_lease_now(repository, held)
    lock_wait_seconds = attempt.budget.wait_seconds(settings.publish_lock_timeout_seconds)
    with repository.signals.publish_lock(lock_wait_seconds), repository.transaction("publish"):
        plan = repository.signals.plan_publish(
            held.sync_date,
            progress.rows_staged,
            pass_attempt=progress.attempt,
            delete_missing=delete_missing,
            rows_listed=rows_listed,
        )
        plan = newer_files.supersede(repository, held.sync_date, plan, delete_missing=delete_missing)
        trips = guard_trips(
            repository,
            attempt,
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
            _write(repository, held.sync_date, plan, progress.attempt)
        repository.signals.discard_plan()
        result = _result(attempt, progress, plan, trips, rows_resumed=rows_resumed)
        if not dry_run:
            logger.info("published", extra={"counts": result.counts()})
        claims.record_completion(repository, held, attempt.info.etag, result)
    return result


def _write(repository: Repository, sync_date: dt.date, plan: PublishPlan, pass_attempt: int) -> None:
    """Apply the plan; each statement checks its own count against it, and a mismatch rolls back."""
    repository.signals.update_changed(sync_date, plan)
    repository.signals.insert_new(sync_date, plan)
    if plan.rows_to_delete:
        deleted = repository.signals.delete_missing(sync_date, pass_attempt)
        if deleted != plan.rows_to_delete:
            raise TransientError(f"deleted {deleted} rows, the plan counted {plan.rows_to_delete}: the table changed meanwhile")


def _result(
    attempt: ClaimedAttempt, progress: StagingProgress, plan: PublishPlan, trips: list[GuardTrip], *, rows_resumed: int
) -> SyncResult:
    """The answer of a publish, or of a dry run with the guards it would trip."""
    dry_run = attempt.held.options.dry_run
    guards_tripped = [trip.guard for trip in trips] if dry_run else []
    would_trip = f"; would trip {', '.join(guards_tripped)}" if trips else ""
    return SyncResult(
        sync_date=attempt.held.sync_date,
        status="dry_run" if dry_run else "completed",
        s3_key=attempt.held.s3_key,
        attempt=attempt.held.claim.attempt,
        rows_processed=progress.rows_read,
        rows_rejected=progress.rows_rejected,
        rows_resumed=rows_resumed,
        rows_inserted=plan.rows_to_insert,
        rows_updated=plan.rows_to_update,
        rows_unchanged=plan.rows_unchanged,
        rows_deleted=plan.rows_to_delete,
        rows_superseded=plan.rows_superseded,
        duration_ms=attempt.held.elapsed_ms(),
        reason="dry run: nothing published" + would_trip if dry_run else None,
        guards_tripped=guards_tripped,
    )


def guard_trips(
    repository: Repository,
    attempt: ClaimedAttempt,
    settings: IngestSettings,
    *,
    rows_read: int,
    rows_rejected: int,
    rows_loaded: int,
    delete_missing: bool = False,
    rows_to_delete: int = 0,
    table_rows: int = 0,
) -> list[GuardTrip]:
    """The guards that trip and are not overridden: the file's counts against the history (and the plan's deletions)."""
    sync_date = attempt.held.sync_date
    previous = repository.ledger.last_completed_before(sync_date)
    figures = GuardFigures(
        sync_date=sync_date,
        rows_processed=rows_read,
        rows_rejected=rows_rejected,
        rows_loaded=rows_loaded,
        previous_date=previous.sync_date if previous else None,
        previous_rows_loaded=previous.rows_loaded if previous else None,
        newest_completed_date=repository.ledger.newest_completed_date(),
        manual_replay=attempt.held.options.trigger.endswith("manual"),
        delete_missing=delete_missing,
        rows_to_delete=rows_to_delete,
        table_rows=table_rows,
    )
    return evaluate_guards(figures, settings.guards, attempt.held.options.override_guards)


def raise_on_trips(trips: list[GuardTrip]) -> None:
    """GuardTripped naming every guard that refused, with their figures."""
    if trips:
        raise GuardTripped(
            ",".join(trip.guard for trip in trips),
            "; ".join(f"{trip.guard}: {trip.message}" for trip in trips),
            {trip.guard: trip.figures for trip in trips},
        )
