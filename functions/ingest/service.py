"""One date's sync, the whole story: describe -> claim -> run the claimed attempt -> record -> clean up.

Knows nothing of Lambda: the handler (or a script, or a test) builds a SyncService and
calls `sync`. Each step lives in a module of its own and takes what it needs:

    claims.py       take the date, renew its lease, record how the attempt ended
    first_load.py   the file straight into an empty table, in one transaction
    stage.py        the file staged in committed chunks (chunks.py prepares them), then
    publish.py      plan, guards, write and complete, in one transaction
    retry.py        transient faults retried in-process, resuming from the last committed chunk
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from typing import Any, TypeVar

import pymysql

from functions.ingest import claims, first_load, stage
from functions.ingest.attempt import ClaimedAttempt, HeldDate, SyncOptions, SyncResult
from functions.ingest.claim_rules import ClaimRequest
from functions.ingest.guards import validate_override_names
from functions.ingest.heartbeat import LeaseHeartbeat
from functions.ingest.newest_wins import NewerFiles
from functions.ingest.publish import publish
from functions.ingest.reconcile import DateToReconcile, reconcile_reason
from functions.ingest.repository import Repository
from functions.ingest.retry import retrying
from functions.ingest.s3_source import ObjectInfo, SignalObjectStore
from functions.ingest.time_budget import TimeBudget
from functions.shared.contract import object_key_for
from functions.shared.errors import ClaimLost, HandedOver, MissingObject, StaleObject, TransientError
from functions.shared.settings import IngestSettings

__all__ = ["SyncOptions", "SyncResult", "SyncService", "object_key_for"]

logger = logging.getLogger("upsell_signals.ingest")
StepResult = TypeVar("StepResult")

# How many times one execution follows an object replaced while it synced, before leaving
# the newest to its own event.
NEWER_OBJECT_ROUNDS = 3


class SyncService:
    """Syncs one date's file into company_upsell_signals."""

    def __init__(
        self,
        settings: IngestSettings,
        connect_database: Callable[[], pymysql.Connection[Any]],
        store: SignalObjectStore,
        *,
        connect_staging: Callable[[], pymysql.Connection[Any]] | None = None,
        connect_heartbeat: Callable[[], pymysql.Connection[Any]] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._connect = connect_database
        # The connection that stages and loads; the only one that may need LOCAL INFILE.
        self._connect_staging = connect_staging or connect_database
        # The lease's own: short timeouts, so a silent server costs a missed beat, not the heartbeat.
        self._connect_heartbeat = connect_heartbeat or connect_database
        self._store = store
        self._newer_files = NewerFiles(store, settings.work_dir, settings.chunk_rows)
        self._sleep = sleep

    def sync(self, sync_date: dt.date, s3_key: str | None, options: SyncOptions) -> SyncResult:
        """Run the sync of `sync_date` from `s3_key` (default: the date's own key).

        The newest file wins: when the object was replaced while this execution synced
        it, the replacement is synced too before answering.
        """
        validate_override_names(sorted(options.override_guards))
        key = s3_key or object_key_for(self._settings.key_prefix, sync_date)
        budget = TimeBudget(self._settings.time_budget, options.seconds_left)
        result, synced_etag = self._sync_replaced_while_read(sync_date, key, options, budget)
        for _ in range(NEWER_OBJECT_ROUNDS):
            if result.status != "completed" or self._current_etag(key) in (None, synced_etag):
                return result
            logger.info("%s was replaced while it synced: syncing the newer object too", key)
            result, synced_etag = self._sync_replaced_while_read(sync_date, key, options, budget)
        return result

    def _sync_replaced_while_read(
        self, sync_date: dt.date, key: str, options: SyncOptions, budget: TimeBudget
    ) -> tuple[SyncResult, str | None]:
        """Sync the object as it is now; when it is replaced before this execution could read it, the newer one.

        ETags say nothing of which object is newer, so an execution that looked the object up
        before a correction landed may still take the date from the correction's; its download
        then meets the newer object (StaleObject, recorded as this attempt's failure), and the
        newest file must win rather than wait in the dead-letter queue.
        """
        for _ in range(NEWER_OBJECT_ROUNDS):
            try:
                return self._sync_object(sync_date, key, options, budget)
            except StaleObject as stale:
                logger.info("%s: syncing the object that replaced it", stale)
        return self._sync_object(sync_date, key, options, budget)

    def _sync_object(
        self, sync_date: dt.date, key: str, options: SyncOptions, budget: TimeBudget
    ) -> tuple[SyncResult, str | None]:
        """Claim the date for this execution and sync the object as it is now; its result and ETag."""
        started = time.monotonic()
        described = self._describe(key)  # a missing object is recorded as a failed attempt once the date is claimed
        etag = described.etag if isinstance(described, ObjectInfo) else None
        request = ClaimRequest(
            sync_date=sync_date,
            s3_key=key,
            etag=etag,
            invocation_id=options.invocation_id,
            holder_token=uuid.uuid4().hex,
            trigger=options.trigger,
            force_resync=options.force_resync,
            dry_run=options.dry_run,
        )
        lease_seconds = self._settings.lease_seconds
        claim, run_id = self._retrying(
            "claim the date", lambda: claims.claim_date(self._connect, request, options, lease_seconds), budget
        )
        if claim.kind != "claimed":
            logger.info("sync %s: %s", claim.kind, claim.reason)
            return SyncResult(
                sync_date=sync_date, status=claim.kind, s3_key=key, attempt=claim.attempt, reason=claim.reason
            ), etag
        held = HeldDate(
            sync_date=sync_date,
            s3_key=key,
            options=options,
            claim=claim,
            run_id=run_id,
            holder_token=request.holder_token,
            lease_seconds=lease_seconds,
            started=started,
        )
        logger.info(
            "claimed %s, attempt %d%s",
            sync_date,
            claim.attempt,
            f": {claim.reason}" if claim.reason else "",
            extra={"s3_key": key, "etag": etag, "force_resync": options.force_resync, "dry_run": options.dry_run},
        )
        return self._run_held(held, described, budget), etag

    def _run_held(self, held: HeldDate, described: ObjectInfo | MissingObject, budget: TimeBudget) -> SyncResult:
        """Run the attempt with retries, then record how it ended: failed, handed over, or superseded."""
        attempt: ClaimedAttempt | None = None
        heartbeat = LeaseHeartbeat(self._connect_heartbeat, held.sync_date, held.holder_token, held.lease_seconds)
        try:
            if isinstance(described, MissingObject):
                raise described
            claimed = attempt = ClaimedAttempt(held=held, info=described, budget=budget)
            with heartbeat:
                return self._retrying("sync", lambda: self._run_claimed(claimed), budget)
        except ClaimLost as lost:
            return claims.record_superseded(self._connect, held, lost)
        except HandedOver as handed:
            claims.record_hand_over(self._connect, held, handed)
            raise
        except Exception as error:
            if self._record_failure(held, error) is False:
                return claims.record_superseded(self._connect, held, error)
            raise
        finally:
            if attempt is not None and attempt.local_path is not None:
                attempt.local_path.unlink(missing_ok=True)

    def _run_claimed(self, attempt: ClaimedAttempt) -> SyncResult:
        """First load, or stage (resuming what is committed), check guards and publish; then clean up. Safe to re-run."""
        with closing(Repository(self._connect_staging())) as repository:
            # An in-process retry may come after a long stall: stop at once if the date was taken over.
            claims.renew_lease_now(repository, attempt.held)
            progress = repository.staging.staging_progress(attempt.held.sync_date, attempt.info.etag)
            if progress is None and first_load.may_load_directly(attempt):
                loaded = first_load.load_into_empty_table(repository, attempt, self._settings, self._store)
                if loaded is not None:
                    return loaded
            if progress is None:
                progress = repository.staging.start_staging(
                    attempt.held.sync_date, attempt.info.etag, attempt.held.claim.attempt, attempt.held.holder_token
                )
            if progress.complete:
                attempt.budget.refuse_a_publish_no_run_can_hold(progress.rows_staged)
                result = publish(
                    repository, attempt, progress, self._settings, newer_files=self._newer_files, rows_resumed=progress.rows_read
                )
            else:
                result = stage.stage_and_publish(
                    repository,
                    attempt,
                    progress,
                    self._settings,
                    store=self._store,
                    connect=self._connect,
                    newer_files=self._newer_files,
                )
        self._clean_up(attempt, progress.attempt)
        logger.info("sync %s", result.status, extra={"result": result.as_dict()})
        return result

    def _clean_up(self, attempt: ClaimedAttempt, pass_attempt: int) -> None:
        """Drop the published pass's staging on a connection of its own; a failure is logged, not retried.

        The publish may have run longer on the listing connection than the server lets an
        idle session live (DB_IDLE_TIMEOUT_SECONDS), so the staging connection may be gone.
        And the date is completed now: retrying the attempt would find it so and answer
        `superseded`. What a failure leaves goes with the date's next pass, or after a week.
        """
        try:
            with closing(Repository(self._connect())) as repository:
                self._drop_staging(repository, attempt, pass_attempt)
        except TransientError as error:
            logger.warning(
                "%s is published, but its staging was not dropped (the next pass of the date, or a sync a week on, drops it): %s",
                attempt.held.sync_date,
                error,
            )

    def dates_to_reconcile(self, synced_date: dt.date) -> list[DateToReconcile]:
        """The RECONCILE_DAYS dates before `synced_date` whose object differs from what completed, or never completed."""
        days = self._settings.reconcile_days
        if days == 0:
            return []
        first, last = synced_date - dt.timedelta(days=days), synced_date - dt.timedelta(days=1)

        def read_states() -> dict[dt.date, dict[str, Any]]:
            with closing(Repository(self._connect())) as repository:
                return repository.ledger.states_between(first, last)

        states = self._retrying("read the recent dates", read_states, TimeBudget(self._settings.time_budget, None))
        found = []
        for offset in range(days):
            sync_date = first + dt.timedelta(days=offset)
            key = object_key_for(self._settings.key_prefix, sync_date)
            described = self._describe(key)
            if isinstance(described, MissingObject):
                continue  # no file for that date (and if one completed, its rows stay)
            reason = reconcile_reason(states.get(sync_date), described.etag)
            if reason is not None:
                found.append(DateToReconcile(sync_date, key, reason))
        logger.info(
            "reconciled %s to %s: %d of %d dates to sync",
            first,
            last,
            len(found),
            days,
            extra={"dates_to_reconcile": {str(date.sync_date): date.reason for date in found}},
        )
        return found

    # -- seams: the clean-up and the failure record (tests pause a sync at either) ----------

    @staticmethod
    def _drop_staging(repository: Repository, attempt: ClaimedAttempt, pass_attempt: int) -> None:
        stage.drop_staging(repository, attempt, pass_attempt)

    def _record_failure(self, held: HeldDate, error: Exception) -> bool | None:
        return claims.record_failure(self._connect, held, error)

    # -- helpers ---------------------------------------------------------------------------

    def _describe(self, key: str) -> ObjectInfo | MissingObject:
        """The object's size and ETag, or the MissingObject error to record under the claim."""
        try:
            # botocore retries the HEAD itself (standard mode: throttling, 5xx, connection errors).
            return self._store.describe(key)
        except MissingObject as missing:
            return missing

    def _current_etag(self, key: str) -> str | None:
        """The ETag of the object at `key` now; None when it is gone."""
        described = self._describe(key)
        return described.etag if isinstance(described, ObjectInfo) else None

    def _retrying(self, action: str, step: Callable[[], StepResult], budget: TimeBudget) -> StepResult:
        return retrying(
            action,
            step,
            retries=self._settings.transient_retries,
            wait_seconds=self._settings.transient_wait_seconds,
            sleep=self._sleep,
            fits=budget.fits,
        )
