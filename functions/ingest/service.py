"""One date's sync, the whole story: describe -> claim -> run the claimed sync -> record -> clean up.

Knows nothing of Lambda: the handler (or a script, or a test) builds a SyncService and
calls `sync`. Each step lives in a module of its own and takes what it needs:

    claims.py       take the date, renew its lease, record how the sync ended
    first_load.py   the file straight into an empty table, in one transaction
    stage.py        the file staged in committed chunks (chunks.py prepares them), then
    publish.py      plan, guards, write and complete, in one transaction
    retry.py        transient faults retried in-process, resuming from the last committed chunk

Three numbers are never mixed up: the claim number (a date's claims counted; `attempt` in
the ledger and the answer), the staging pass number (the claim number that started the
pass), and the in-process retries of one claimed sync (retry.py), which have no number.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from contextlib import closing
from typing import Any, TypeVar

import pymysql

from functions.ingest import claims, compared_pass, first_load, stage
from functions.ingest.chunks import ObjectDownload
from functions.ingest.guards import validate_override_names
from functions.ingest.heartbeat import LeaseHeartbeat
from functions.ingest.hooks import SyncHooks
from functions.ingest.newest_wins import NewerFiles
from functions.ingest.publish import publish
from functions.ingest.reconcile import DateToReconcile, dates_to_reconcile
from functions.ingest.repository import Repository
from functions.ingest.retry import retrying
from functions.ingest.s3_source import ObjectInfo, SignalObjectStore
from functions.ingest.sync_values import ClaimAnswer, ClaimedSync, HeldDate, SyncAnswer, SyncOptions, SyncResult
from functions.ingest.time_budget import TimeBudget
from functions.ingest.work_space import LEFTOVER_AGE_SECONDS, download_path
from functions.shared.contract import object_key_for
from functions.shared.db import answers_on_this_thread
from functions.shared.errors import ClaimLost, HandedOver, MissingObject, StaleObject, TransientError
from functions.shared.settings import IngestSettings

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
        hooks: SyncHooks | None = None,
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
        self._hooks = hooks or SyncHooks()

    def sync(self, sync_date: dt.date, s3_key: str | None, options: SyncOptions) -> SyncAnswer:
        """Run the sync of `sync_date` from `s3_key` (default: the date's own key).

        The newest file wins: when the object was replaced while this execution synced
        it, the replacement is synced too before answering.
        """
        validate_override_names(sorted(options.override_guards))
        key = s3_key or object_key_for(self._settings.key_prefix, sync_date)
        budget = TimeBudget(self._settings.time_budget, options.seconds_left, options.run_seconds, sync_date)
        result, synced_etag = self._sync_replaced_while_read(sync_date, key, options, budget)
        for _ in range(NEWER_OBJECT_ROUNDS):
            if result.status != "completed" or self._current_etag(key) in (None, synced_etag):
                return result
            logger.info("%s was replaced while it synced: syncing the newer object too", key)
            result, synced_etag = self._sync_replaced_while_read(sync_date, key, options, budget)
        return result

    def _sync_replaced_while_read(
        self, sync_date: dt.date, key: str, options: SyncOptions, budget: TimeBudget
    ) -> tuple[SyncAnswer, str | None]:
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
    ) -> tuple[SyncAnswer, str | None]:
        """Claim the date for this execution and sync the object as it is now; its result and ETag."""
        started = time.monotonic()
        described = self._describe(key)  # a missing object is recorded as a failure once the date is claimed
        etag = described.etag if isinstance(described, ObjectInfo) else None
        request = claims.claim_request(sync_date, key, etag, options)
        lease_seconds = self._settings.lease_seconds
        claim, run_id = self._retrying(
            "claim the date", lambda: claims.claim_date(self._connect, request, options, lease_seconds), budget
        )
        if claim.kind != "claimed":
            logger.info("sync %s: %s", claim.kind, claim.reason)
            answer = ClaimAnswer(
                sync_date=sync_date, status=claim.kind, s3_key=key, claim_number=claim.claim_number, reason=claim.reason
            )
            return answer, etag
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
            claim.claim_number,
            f": {claim.reason}" if claim.reason else "",
            extra={"s3_key": key, "etag": etag, "force_resync": options.force_resync, "dry_run": options.dry_run},
        )
        return self._run_held(held, described, budget), etag

    def _run_held(self, held: HeldDate, described: ObjectInfo | MissingObject, budget: TimeBudget) -> SyncAnswer:
        """Run the claimed sync with retries, then record how it ended: failed, handed over, or superseded."""
        download: ObjectDownload | None = None
        heartbeat = LeaseHeartbeat(self._connect_heartbeat, held.sync_date, held.holder_token, held.lease_seconds)
        try:
            if isinstance(described, MissingObject):
                raise described
            claimed = ClaimedSync(held=held, info=described, budget=budget)
            path = download_path(self._settings.work_dir, held.sync_date, described.etag)
            download = ObjectDownload(self._store, described, path, leftovers_after=LEFTOVER_AGE_SECONDS)
            with heartbeat:
                result = self._retrying("sync", self._runs_of(claimed, download), budget)
            logger.info("sync %s", result.status, extra={"result": result.as_dict()})
            return result
        except ClaimLost as lost:
            return claims.completed_by_this_run(self._connect, held) or claims.record_superseded(self._connect, held, lost)
        except HandedOver as handed:
            claims.record_hand_over(self._connect, held, handed)
            raise
        except Exception as error:
            self._hooks.before_recording_failure(held)
            if claims.record_failure(self._connect, held, error) is False:
                return claims.record_superseded(self._connect, held, error)
            raise
        finally:
            if download is not None:
                download.remove()

    def _runs_of(self, claimed: ClaimedSync, download: ObjectDownload) -> Callable[[], SyncResult]:
        """One run of the claimed sync, as the in-process retries repeat it.

        A first load that failed midway is not tried again: its retry stages, so that a
        second failure resumes from the committed chunks instead of starting over.
        """
        load_directly = first_load.may_load_directly(claimed)
        attempt = claimed

        def run() -> SyncResult:
            nonlocal load_directly, attempt
            this_attempt, attempt = attempt, dataclasses.replace(claimed, retried=True)
            outcome = self._run_claimed(this_attempt, download, load_directly=load_directly)
            if isinstance(outcome, first_load.FirstLoadFailed):
                load_directly = False
                raise outcome.failure
            return outcome

        return run

    def _run_claimed(
        self, claimed: ClaimedSync, download: ObjectDownload, *, load_directly: bool
    ) -> SyncResult | first_load.FirstLoadFailed:
        """First load, or stage (resuming what is committed), check guards and publish; then clean up. Safe to re-run."""
        held = claimed.held
        with closing(Repository(self._connect_staging())) as repository:
            # An in-process retry may come after a long stall: stop at once if the date was taken over.
            claims.renew_lease_now(repository, held)
            progress = repository.staging.staging_progress(held.sync_date, claimed.info.etag)
            if progress is None and load_directly:
                loaded = first_load.load_into_empty_table(repository, claimed, self._settings, download)
                if not isinstance(loaded, first_load.StageInstead):
                    return loaded
            if progress is None:
                # The pass is numbered by the claim that starts it.
                progress = compared_pass.start_pass(repository, claimed)
            delete_missing = self._settings.missing_rows == "delete"
            newer_rows = self._newer_files.rows_read_first(repository, held.sync_date, delete_missing=delete_missing)
            with stage.staged_pass(
                repository, claimed, progress, self._settings, download=download, connect=self._connect, newer_rows=newer_rows
            ) as staged:
                self._hooks.before_publish(staged.repository)
                result = publish(
                    staged.repository,
                    claimed,
                    staged.progress,
                    self._settings,
                    newer_files=self._newer_files,
                    rows_resumed=staged.rows_resumed,
                    rows_listed=staged.rows_listed,
                    comparison=staged.comparison,
                )
        self._clean_up(claimed, staged.progress.pass_number)
        return result

    def _clean_up(self, claimed: ClaimedSync, pass_number: int) -> None:
        """Drop the published pass's staging on a connection of its own; a failure is logged, not retried.

        The publish may have run longer on the listing connection than the server lets an
        idle session live (DB_IDLE_TIMEOUT_SECONDS), so the staging connection may be gone.
        And the date is completed now: retrying the sync would find it so and answer
        `superseded`. What a failure leaves goes with the date's next pass, or after a week.
        """
        try:
            with closing(Repository(self._connect())) as repository:
                self._hooks.before_clean_up(repository)
                stage.drop_staging(repository, claimed, pass_number)
        except TransientError as error:
            logger.warning(
                "%s is published, but its staging was not dropped (the next pass of the date, or a sync a week on, drops it): %s",
                claimed.held.sync_date,
                error,
            )

    def dates_to_reconcile(self, synced_date: dt.date, holder_token: str | None = None) -> list[DateToReconcile]:
        """The RECONCILE_DAYS dates before `synced_date` whose object differs from what completed, or never completed.

        `holder_token`: the durable execution asking; a date it holds itself is resumed, whatever its lease.
        """
        days = self._settings.reconcile_days
        if days == 0:
            return []
        first, last = synced_date - dt.timedelta(days=days), synced_date - dt.timedelta(days=1)

        def read_states() -> dict[dt.date, dict[str, Any]]:
            with closing(Repository(self._connect())) as repository:
                return repository.ledger.states_between(first, last)

        states = self._retrying("read the recent dates", read_states, TimeBudget(self._settings.time_budget, None))
        return dates_to_reconcile(states, first, days, lambda sync_date: self._describe(self._key_for(sync_date)), holder_token)

    # -- helpers ---------------------------------------------------------------------------

    def _key_for(self, sync_date: dt.date) -> str:
        return object_key_for(self._settings.key_prefix, sync_date)

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
            answers=answers_on_this_thread,
        )
