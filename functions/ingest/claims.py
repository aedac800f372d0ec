"""The life of a claim on a date: take it, renew its lease, and record how it ended.

Every write of a sync is fenced by the holder's token; the lease is renewed here and
only here (the ledger's `complete` aside, which lets it go). Endings other than a
completion are recorded on a fresh connection of their own, so that they still land
when the sync's own connection is what failed.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from contextlib import closing
from typing import Any

import pymysql

from functions.ingest.claim_rules import ClaimOutcome, ClaimRequest
from functions.ingest.repository import Repository
from functions.ingest.sync_values import ClaimAnswer, HeldDate, SyncOptions, SyncResult
from functions.shared.errors import GuardTripped, HandedOver, IngestError

logger = logging.getLogger("upsell_signals.ingest")
Connect = Callable[[], "pymysql.Connection[Any]"]


def claim_request(sync_date: dt.date, s3_key: str, etag: str | None, options: SyncOptions) -> ClaimRequest:
    """What this sync asks the ledger for: the date, under a durable run's token (its execution's) or a fresh one."""
    durable = options.durable_run
    return ClaimRequest(
        sync_date=sync_date,
        s3_key=s3_key,
        etag=etag,
        invocation_id=options.invocation_id,
        holder_token=durable.holder_token if durable else uuid.uuid4().hex,
        trigger=options.trigger,
        force_resync=options.force_resync,
        dry_run=options.dry_run,
        durable_execution_arn=durable.execution_arn if durable else None,
        durable_run=durable.number if durable else None,
    )


def claim_date(connect: Connect, request: ClaimRequest, options: SyncOptions, lease_seconds: int) -> tuple[ClaimOutcome, int]:
    """Claim the date (or learn why not) and add this invocation to the run history, in one transaction."""
    with closing(Repository(connect())) as repository:
        with repository.transaction("claim the date"):
            claim = repository.ledger.claim(request, lease_seconds)
            if claim.previous is not None and claim.previous["status"] == "started":
                repository.runs.close_abandoned_runs(request.sync_date, claim.claim_number)
            elif claim.own_claim:
                repository.runs.close_resumed_runs(request.sync_date, claim.claim_number)
            run_id = repository.runs.start_run(
                sync_date=request.sync_date,
                claim_number=claim.claim_number,
                invocation_id=options.invocation_id,
                trigger=options.trigger,
                s3_key=request.s3_key,
                etag=request.etag,
                force_resync=options.force_resync,
                dry_run=options.dry_run,
                status="started" if claim.kind == "claimed" else claim.kind,
                reason=claim.reason,
            )
        return claim, run_id


def renew_lease(repository: Repository, held: HeldDate) -> None:
    """ClaimLost unless we still hold the date; push the lease out (inside the caller's transaction)."""
    repository.ledger.renew_lease(held.sync_date, held.holder_token, held.lease_seconds)


def renew_lease_now(repository: Repository, held: HeldDate) -> None:
    """Push the lease out before a long transaction, in a short one of its own.

    The long transaction does not hold the metadata row, so that a concurrent
    invocation is answered at once rather than waiting on its lock; `complete` checks
    the claim again at the end and rolls everything back if it was lost meanwhile.
    """
    with repository.transaction("renew the lease"):
        renew_lease(repository, held)


def record_completion(repository: Repository, held: HeldDate, etag: str, result: SyncResult) -> None:
    """Record the outcome in the metadata row (unless a dry run) and the run history (inside the publish)."""
    if result.status == "completed":
        counts = {name: value or 0 for name, value in result.counts().items()}
        repository.ledger.complete(held.sync_date, held.holder_token, etag, counts, result.duration_ms)
    repository.runs.finish_run(held.run_id, status=result.status, counts=result.counts(), duration_ms=result.duration_ms)


def record_failure(connect: Connect, held: HeldDate, error: Exception) -> bool | None:
    """Write the failure to the metadata row and the run history, on a fresh connection.

    True when recorded; False when another execution holds the date now (it answers for
    the date, so this one was superseded); None when the database could not be reached.
    """
    reason = str(error) or type(error).__name__
    duration_ms = held.elapsed_ms()
    try:
        with closing(Repository(connect())) as repository, repository.transaction("record the failure"):
            if held.options.dry_run:
                # A dry run leaves the date as it found it, even when it fails.
                still_ours = repository.ledger.release_dry_run(held.sync_date, held.holder_token, held.claim.previous)
            else:
                still_ours = repository.ledger.fail(held.sync_date, held.holder_token, reason, duration_ms)
            if still_ours:
                _finish_run(repository, held, status="failed", error=error, message=reason, duration_ms=duration_ms)
    except IngestError:
        # The database is unreachable too: the error itself still propagates to the
        # caller (and the dead-letter queue); the lease lets a later claim take over.
        logger.exception("could not record the failure of %s", held.sync_date)
        return None
    if isinstance(error, GuardTripped) and still_ours:
        logger.warning("guard tripped", extra={"guard": error.guard, "figures": error.figures})
    return still_ours


def record_hand_over(connect: Connect, held: HeldDate, handed: HandedOver) -> None:
    """Let the date go at once, its committed chunks kept, so the next run of the event resumes them.

    A dry run puts the date back as it found it instead; its staging stays for its next run too.
    """
    logger.warning("handing %s over: %s", held.sync_date, handed)
    try:
        with closing(Repository(connect())) as repository, repository.transaction("hand the date over"):
            if held.options.dry_run:
                repository.ledger.release_dry_run(held.sync_date, held.holder_token, held.claim.previous)
            else:
                repository.ledger.hand_over(held.sync_date, held.holder_token, str(handed))
            _finish_run(
                repository, held, status="handed_over", error=handed, message=str(handed), duration_ms=held.elapsed_ms()
            )
    except IngestError:
        # Unrecorded, the lease still runs out by itself and the next run takes over.
        logger.exception("could not record the hand-over of %s", held.sync_date)


def completed_by_this_run(connect: Connect, held: HeldDate) -> SyncResult | None:
    """This run's answer if its publish committed though its reply was lost (its run row says so); None if not.

    The retry that follows finds the date completed and no longer held: not another execution's doing.
    """
    with closing(Repository(connect())) as repository, repository.transaction("read this run's record"):
        counts = repository.runs.completed_counts(held.run_id)
    if counts is None:
        return None
    logger.info("%s: this run's publish committed, though its reply was lost", held.sync_date)
    return SyncResult(
        sync_date=held.sync_date,
        status="completed",
        s3_key=held.s3_key,
        claim_number=held.claim.claim_number,
        duration_ms=held.elapsed_ms(),
        rows_processed=int(counts["rows_processed"] or 0),
        rows_inserted=int(counts["rows_inserted"] or 0),
        rows_updated=int(counts["rows_updated"] or 0),
        rows_unchanged=int(counts["rows_unchanged"] or 0),
        rows_rejected=int(counts["rows_rejected"] or 0),
        rows_deleted=int(counts["rows_deleted"] or 0),
        rows_resumed=int(counts["rows_resumed"] or 0),
        rows_superseded=counts["rows_superseded"],
    )


def record_superseded(connect: Connect, held: HeldDate, cause: Exception) -> ClaimAnswer:
    """Answer for an execution whose date another one took over: that one syncs the date now."""
    reason = f"superseded: another execution holds {held.sync_date} now and syncs it ({cause})"
    logger.info("sync skipped: %s", reason)
    duration_ms = held.elapsed_ms()
    with closing(Repository(connect())) as repository, repository.transaction("record that another execution took the date"):
        _finish_run(repository, held, status="skipped", error=cause, message=reason, duration_ms=duration_ms)
    return ClaimAnswer(
        sync_date=held.sync_date,
        status="skipped",
        s3_key=held.s3_key,
        claim_number=held.claim.claim_number,
        duration_ms=duration_ms,
        reason=reason,
    )


def _finish_run(repository: Repository, held: HeldDate, *, status: str, error: Exception, message: str, duration_ms: int) -> None:
    """Close this invocation's run row with an ending that has no counts."""
    repository.runs.finish_run(
        held.run_id,
        status=status,
        counts={},
        duration_ms=duration_ms,
        error_type=type(error).__name__,
        error_message=message,
    )
