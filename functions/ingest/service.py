"""One date's sync: claim -> fetch -> read and validate -> stage -> guards -> publish -> complete.

Knows nothing of Lambda: the handler (or a script, or a test) builds a SyncService and
calls `sync`. Transient faults are retried in-process by resuming from the last
committed chunk; every outcome is written to the metadata row and the run history.
A first load into the empty table skips staging: it loads and publishes in one
transaction, and only a retry of it stages.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pymysql

from functions.ingest.change_listing import ChangeLister, listing_alongside_staging
from functions.ingest.claim_rules import ClaimOutcome, ClaimRequest
from functions.ingest.guards import GuardFigures, GuardTrip, evaluate_guards, validate_override_names
from functions.ingest.parquet_reader import SignalFile
from functions.ingest.repository import SignalsRepository, StagingProgress
from functions.ingest.s3_source import ObjectInfo, SignalObjectStore
from functions.ingest.staging_file import write_load_file
from functions.ingest.time_budget import TimeBudget
from functions.ingest.validation import ValidatedBatch, validate_batch
from functions.ingest.work_space import remove_leftovers
from functions.shared.errors import ClaimLost, GuardTripped, HandedOver, IngestError, MissingObject, TransientError
from functions.shared.settings import IngestSettings

logger = logging.getLogger("upsell_signals.ingest")
StepResult = TypeVar("StepResult")

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 20.0
ABANDONED_STAGING_DAYS = 7
# How many times one execution follows an object replaced while it synced, before leaving
# the newest to its own event.
NEWER_OBJECT_ROUNDS = 3
PROGRESS_LOG_CHUNKS = 20  # 500,000 rows at the default chunk size


def object_key_for(prefix: str, sync_date: dt.date) -> str:
    """The S3 key of a date's file: <prefix>dt=YYYY-MM-DD/data.parquet."""
    return f"{prefix}dt={sync_date.isoformat()}/data.parquet"


@dataclass(frozen=True, kw_only=True)
class SyncOptions:
    """How to run one sync, as the trigger asked."""

    invocation_id: str
    trigger: str = "manual"
    force_resync: bool = False
    dry_run: bool = False
    override_guards: frozenset[str] = frozenset()
    # Seconds until the function is killed (Lambda's context); None where nothing will kill it.
    seconds_left: Callable[[], float] | None = field(default=None, compare=False)


@dataclass(kw_only=True)
class SyncResult:
    """What the handler returns and the logs and metrics report."""

    sync_date: dt.date
    status: str  # completed | skipped | in_progress | dry_run | failed
    s3_key: str
    attempt: int | None = None
    rows_processed: int | None = None
    rows_inserted: int | None = None
    rows_updated: int | None = None
    rows_unchanged: int | None = None
    rows_rejected: int | None = None
    rows_deleted: int | None = None
    rows_resumed: int | None = None
    duration_ms: int | None = None
    reason: str | None = None
    guards_tripped: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int | None]:
        return {
            "rows_processed": self.rows_processed,
            "rows_inserted": self.rows_inserted,
            "rows_updated": self.rows_updated,
            "rows_unchanged": self.rows_unchanged,
            "rows_rejected": self.rows_rejected,
            "rows_deleted": self.rows_deleted,
            "rows_resumed": self.rows_resumed,
        }

    def as_dict(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"sync_date": self.sync_date.isoformat(), "status": self.status, "s3_key": self.s3_key}
        answer.update({name: value for name, value in self.counts().items() if value is not None})
        if self.attempt is not None:
            answer["attempt"] = self.attempt
        if self.duration_ms is not None:
            answer["duration_ms"] = self.duration_ms
        if self.reason:
            answer["reason"] = self.reason
        if self.guards_tripped:
            answer["guards_tripped"] = self.guards_tripped
        return answer


@dataclass(frozen=True)
class _PreparedChunk:
    """A chunk validated and, for LOAD DATA, rendered to its file; ready to commit."""

    first_row: int
    rows_read: int
    validated: ValidatedBatch
    load_file: Path | None
    slot: int  # which of the two load files; the other may be in use by the chunk loading


@dataclass
class _Attempt:
    """State of the claimed attempt, shared by the pipeline's steps."""

    sync_date: dt.date
    key: str
    info: ObjectInfo | None
    options: SyncOptions
    claim: ClaimOutcome
    run_id: int
    started: float
    holder_token: str  # this execution's fence on the date: every write checks it
    budget: TimeBudget
    local_path: Path | None = None
    direct_load_failed: bool = False


class SyncService:
    """Syncs one date's file into company_upsell_signals."""

    def __init__(
        self,
        settings: IngestSettings,
        connect_database: Callable[[], pymysql.Connection[Any]],
        store: SignalObjectStore,
        *,
        connect_staging: Callable[[], pymysql.Connection[Any]] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._connect = connect_database
        # The connection that stages and loads; the only one that may need LOCAL INFILE.
        self._connect_staging = connect_staging or connect_database
        self._store = store
        self._sleep = sleep

    # -- the whole sync ---------------------------------------------------------

    def sync(self, sync_date: dt.date, s3_key: str | None, options: SyncOptions) -> SyncResult:
        """Run the sync of `sync_date` from `s3_key` (default: the date's own key).

        The newest file wins: when the object was replaced while this execution synced
        it, the replacement is synced too before answering.
        """
        validate_override_names(sorted(options.override_guards))
        key = s3_key or object_key_for(self._settings.key_prefix, sync_date)
        budget = TimeBudget(self._settings.time_budget, options.seconds_left)
        result, synced_etag = self._sync_object(sync_date, key, options, budget)
        for _ in range(NEWER_OBJECT_ROUNDS):
            if result.status != "completed" or self._current_etag(key) in (None, synced_etag):
                return result
            logger.info("%s was replaced while it synced: syncing the newer object too", key)
            result, synced_etag = self._sync_object(sync_date, key, options, budget)
        return result

    def _sync_object(
        self, sync_date: dt.date, key: str, options: SyncOptions, budget: TimeBudget
    ) -> tuple[SyncResult, str | None]:
        """Claim the date for this execution and sync the object as it is now; its result and ETag."""
        started = time.monotonic()
        missing: MissingObject | None = None
        info: ObjectInfo | None = None
        try:
            # botocore retries the HEAD itself (standard mode: throttling, 5xx, connection errors).
            info = self._store.describe(key)
        except MissingObject as error:
            missing = error  # recorded as a failed attempt once the date is claimed
        request = ClaimRequest(
            sync_date=sync_date,
            s3_key=key,
            etag=info.etag if info else None,
            invocation_id=options.invocation_id,
            holder_token=uuid.uuid4().hex,
            trigger=options.trigger,
            force_resync=options.force_resync,
            dry_run=options.dry_run,
        )

        def claim_date() -> tuple[ClaimOutcome, int]:
            repository = self._repository()
            try:
                with repository.transaction("claim the date"):
                    claim = repository.claim(request, self._settings.lease_seconds)
                    if claim.previous is not None and claim.previous["status"] == "started":
                        repository.close_abandoned_runs(sync_date, claim.attempt)
                    run_id = repository.start_run(
                        sync_date=sync_date,
                        attempt=claim.attempt,
                        invocation_id=options.invocation_id,
                        trigger=options.trigger,
                        s3_key=key,
                        etag=request.etag,
                        force_resync=options.force_resync,
                        dry_run=options.dry_run,
                        status="started" if claim.kind == "claimed" else claim.kind,
                        reason=claim.reason,
                    )
                return claim, run_id
            finally:
                repository.connection.close()

        claim, run_id = self._retrying("claim the date", claim_date)
        if claim.kind != "claimed":
            logger.info("sync %s: %s", claim.kind, claim.reason)
            result = SyncResult(sync_date=sync_date, status=claim.kind, s3_key=key, attempt=claim.attempt, reason=claim.reason)
            return result, request.etag

        attempt = _Attempt(sync_date, key, info, options, claim, run_id, started, request.holder_token, budget)
        logger.info(
            "claimed %s, attempt %d%s",
            sync_date,
            claim.attempt,
            f": {claim.reason}" if claim.reason else "",
            extra={"s3_key": key, "etag": request.etag, "force_resync": options.force_resync, "dry_run": options.dry_run},
        )
        try:
            if missing is not None:
                raise missing
            return self._retrying("sync", lambda: self._run_claimed(attempt)), request.etag
        except ClaimLost as lost:
            return self._superseded(attempt, lost), request.etag
        except HandedOver as handed:
            self._hand_over(attempt, handed)
            raise
        except Exception as error:
            if self._record_failure(attempt, error) is False:
                return self._superseded(attempt, error), request.etag
            raise
        finally:
            if attempt.local_path is not None:
                attempt.local_path.unlink(missing_ok=True)

    def _current_etag(self, key: str) -> str | None:
        """The ETag of the object at `key` now; None when it is gone."""
        try:
            return self._store.describe(key).etag
        except MissingObject:
            return None

    # -- steps ------------------------------------------------------------------

    def _run_claimed(self, attempt: _Attempt) -> SyncResult:
        """Load, or stage (resuming what is committed), check guards and publish; safe to re-run."""
        assert attempt.info is not None
        repository = SignalsRepository(self._connect_staging())
        try:
            # An in-process retry may come after a long stall: stop at once if the date was taken over.
            self._renew_lease(repository, attempt)
            progress = repository.staging_progress(attempt.sync_date, attempt.info.etag)
            if progress is None and self._may_load_directly(attempt):
                try:
                    loaded = self._load_into_empty_table(repository, attempt)
                except TransientError:
                    attempt.direct_load_failed = True  # the retry stages, so it can resume
                    raise
                if loaded is not None:
                    return loaded
            if progress is None:
                progress = repository.start_staging(
                    attempt.sync_date, attempt.info.etag, attempt.claim.attempt, attempt.holder_token
                )
            if progress.complete:
                result = self._publish(repository, attempt, progress, rows_resumed=progress.rows_read)
            else:
                result = self._stage_and_publish(repository, attempt, progress)
            self._drop_staging(repository, attempt, progress.attempt)
            logger.info("sync %s", result.status, extra={"result": result.as_dict()})
            return result
        finally:
            repository.connection.close()

    @staticmethod
    def _may_load_directly(attempt: _Attempt) -> bool:
        """A first load may skip staging, unless an attempt at it already died or failed.

        Taking over a lease that ran out means the last holder crashed or timed out,
        perhaps in the middle of such a load: this attempt stages, so that it can resume.
        """
        previous = attempt.claim.previous
        taken_over = previous is not None and previous.get("status") == "started"
        return not (attempt.options.dry_run or attempt.direct_load_failed or taken_over)

    def _open_file(self, attempt: _Attempt) -> tuple[SignalFile, pa.Table]:
        """Download the object (once per attempt) and find its duplicated keys."""
        info = attempt.info
        assert info is not None
        if attempt.local_path is None:
            for leftover in remove_leftovers(Path(self._settings.work_dir), self._settings.lease_seconds):
                logger.info("removed %s, left by a sync that was killed", leftover.name)
            local_path = Path(self._settings.work_dir) / f"upsell-signals-{attempt.sync_date}-{info.etag}.parquet"
            self._store.download(info, local_path)
            # Set only once the download is complete and verified: a retry after a broken
            # one must download again, not open what the broken one left.
            attempt.local_path = local_path
        signal_file = SignalFile(attempt.local_path)
        if signal_file.mapping.ignored:
            logger.info("ignoring extra columns: %s", ", ".join(signal_file.mapping.ignored))
        duplicates = signal_file.duplicate_keys()
        if duplicates.num_rows:
            logger.warning("%d company ids appear more than once; every copy is rejected", duplicates.num_rows)
        return signal_file, duplicates

    @contextmanager
    def _prepared_chunks(
        self, attempt: _Attempt, signal_file: SignalFile, duplicates: pa.Table, from_row: int
    ) -> Iterator[Iterator[_PreparedChunk]]:
        """The file's chunks from `from_row` on, validated and rendered, each prepared ahead.

        The next chunk is read, validated and rendered on a worker thread while the
        caller loads the current one: pyarrow and the file write release the GIL, and
        the load runs in the server, so the two overlap on two cores.
        """
        assert attempt.local_path is not None
        batches = signal_file.batches(from_row, self._settings.chunk_rows)
        load_files = [attempt.local_path.with_suffix(f".load{slot}.tsv") for slot in (0, 1)]

        def prepare_next(slot: int) -> _PreparedChunk | None:
            next_batch = next(batches, None)
            if next_batch is None:
                return None
            first_row, batch = next_batch
            validated = validate_batch(batch, first_row, duplicates)
            load_file = None
            if self._settings.load_method == "local_infile":
                load_file = load_files[slot]
                write_load_file(validated.valid_rows, load_file)
            return _PreparedChunk(first_row, batch.num_rows, validated, load_file, slot)

        def chunks() -> Iterator[_PreparedChunk]:
            pending = preparer.submit(prepare_next, 0)
            while (chunk := pending.result()) is not None:
                # The slot of the chunk before this one is free again: prepare into it.
                pending = preparer.submit(prepare_next, (chunk.slot + 1) % 2)
                yield chunk

        preparer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare-chunk")
        try:
            yield chunks()
        finally:
            preparer.shutdown(wait=True, cancel_futures=True)
            for load_file in load_files:
                load_file.unlink(missing_ok=True)

    def _stage_and_publish(self, repository: SignalsRepository, attempt: _Attempt, progress: StagingProgress) -> SyncResult:
        """Stage the rest of the file, listing its changes alongside when the publish lock is free; publish."""
        signal_file, duplicates = self._open_file(attempt)
        assert attempt.info is not None
        with repository.transaction("note the file's rows"):
            repository.record_rows_in_file(attempt.sync_date, attempt.info.etag, signal_file.num_rows)
        rows_resumed = progress.rows_read
        with listing_alongside_staging(
            self._connect, attempt.sync_date, file_rows=signal_file.num_rows, rows_staged=progress.rows_read
        ) as lister:
            progress = self._stage(repository, attempt, progress, signal_file=signal_file, duplicates=duplicates, lister=lister)
            # A run that found staging complete publishes regardless: see TimeBudget.
            attempt.budget.stop_before_publish_if_short(progress.rows_staged)
            if lister is None:
                return self._publish(repository, attempt, progress, rows_resumed=rows_resumed)
            return self._publish(lister.repository, attempt, progress, rows_resumed=rows_resumed, rows_listed=lister.finish())

    def _stage(
        self,
        repository: SignalsRepository,
        attempt: _Attempt,
        progress: StagingProgress,
        *,
        signal_file: SignalFile,
        duplicates: pa.Table,
        lister: ChangeLister | None,
    ) -> StagingProgress:
        """Stage the file from the last committed row on, one committed chunk at a time."""
        info = attempt.info
        assert info is not None
        if progress.rows_read:
            logger.info("resuming staging at row %d (%d chunks committed)", progress.rows_read, progress.chunks_committed)
        rows_read = progress.rows_read
        chunks_this_run = 0
        with self._prepared_chunks(attempt, signal_file, duplicates, progress.rows_read) as chunks:
            for chunk in chunks:
                if chunks_this_run:  # every run commits a chunk at least: hand-overs always make progress
                    attempt.budget.stop_if_out_of_time(f"staging at row {rows_read} of {signal_file.num_rows}")
                self._commit_chunk(repository, attempt, chunk, rows_read, progress.attempt)
                rows_read = chunk.first_row + chunk.rows_read
                chunks_this_run += 1
                if chunks_this_run % PROGRESS_LOG_CHUNKS == 0:
                    self._log_progress(attempt, rows_read - progress.rows_read, rows_read, signal_file.num_rows)
                if lister is not None:
                    lister.list_rows(chunk.first_row, rows_read)
        if rows_read != signal_file.num_rows:
            raise TransientError(f"read {rows_read} rows of {signal_file.num_rows}")
        with repository.transaction("finish staging"):
            repository.renew_lease(attempt.sync_date, attempt.holder_token, self._settings.lease_seconds)
            repository.finish_staging(attempt.sync_date, info.etag, rows_read)
        staged = repository.staging_progress(attempt.sync_date, info.etag)
        assert staged is not None and staged.complete
        logger.info(
            "staged %d rows, rejected %d, in %d chunks",
            staged.rows_staged,
            staged.rows_rejected,
            staged.chunks_committed,
            extra={"rows_read": staged.rows_read, "load_method": self._settings.load_method},
        )
        return staged

    @staticmethod
    def _log_progress(attempt: _Attempt, rows_this_run: int, rows_read: int, file_rows: int) -> None:
        """A line every few chunks, so that a long sync is not silent until its end."""
        elapsed = time.monotonic() - attempt.started
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

    def _load_into_empty_table(self, repository: SignalsRepository, attempt: _Attempt) -> SyncResult | None:
        """A first load: the file straight into the empty table, in one transaction.

        With nothing to compare against, staging would only write every row twice. The
        rows become visible together at the commit, like a publish; a failure rolls them
        all back and the next attempt stages instead. None when the table is not empty.
        """
        info = attempt.info
        assert info is not None
        sync_date = attempt.sync_date
        # Asked before taking the lock, so that an everyday sync does not queue behind
        # another date's publish only to learn that it must stage; asked again under it.
        with repository.transaction("look for an empty table"):
            if not repository.table_is_empty():
                return None
        self._renew_lease(repository, attempt)
        with repository.publish_lock(self._settings.publish_lock_timeout_seconds), repository.transaction("first load"):
            if not repository.table_is_empty():
                return None
            signal_file, duplicates = self._open_file(attempt)
            if not attempt.budget.first_load_fits(signal_file.num_rows):
                logger.info("the table is empty, but %d rows may not load in the time left: staging", signal_file.num_rows)
                return None
            logger.info("the table is empty: loading the file straight into it")
            rows_loaded = rows_rejected = rows_read = 0
            with self._prepared_chunks(attempt, signal_file, duplicates, 0) as chunks:
                for chunk in chunks:
                    valid_rows = chunk.validated.valid_rows
                    if chunk.load_file is not None:
                        repository.load_signals_file(chunk.load_file, valid_rows.num_rows)
                    else:
                        repository.insert_signal_rows(valid_rows)
                    repository.insert_rejected_rows(sync_date, attempt.claim.attempt, chunk.validated.rejected_rows)
                    rows_loaded += valid_rows.num_rows
                    rows_rejected += len(chunk.validated.rejected_rows)
                    rows_read = chunk.first_row + chunk.rows_read
            if rows_read != signal_file.num_rows:
                raise TransientError(f"read {rows_read} rows of {signal_file.num_rows}")
            figures = self._guard_figures(repository, sync_date, rows_read, rows_rejected, rows_loaded)
            self._raise_on_trips(evaluate_guards(figures, self._settings.guards, attempt.options.override_guards))
            result = SyncResult(
                sync_date=sync_date,
                status="completed",
                s3_key=attempt.key,
                attempt=attempt.claim.attempt,
                rows_processed=rows_read,
                rows_rejected=rows_rejected,
                rows_inserted=rows_loaded,
                rows_updated=0,
                rows_unchanged=0,
                rows_deleted=0,
                rows_resumed=0,
            )
            self._complete(repository, attempt, result)
        logger.info("published", extra={"counts": result.counts()})
        logger.info("sync %s", result.status, extra={"result": result.as_dict()})
        return result

    def _commit_chunk(
        self, repository: SignalsRepository, attempt: _Attempt, chunk: _PreparedChunk, rows_read: int, pass_attempt: int
    ) -> None:
        """Stage one chunk's rows and rejects and move the progress, in one transaction."""
        assert attempt.info is not None
        validated = chunk.validated
        with repository.transaction(f"stage rows {chunk.first_row}-{chunk.first_row + chunk.rows_read - 1}"):
            if chunk.load_file is not None:
                repository.load_staging_file(attempt.sync_date, chunk.load_file, validated.valid_rows.num_rows)
            else:
                repository.insert_staging_rows(attempt.sync_date, validated.valid_rows)
            repository.insert_rejected_rows(attempt.sync_date, pass_attempt, validated.rejected_rows)
            repository.advance_progress(
                attempt.sync_date,
                attempt.info.etag,
                from_row=rows_read,
                to_row=chunk.first_row + chunk.rows_read,
                staged=validated.valid_rows.num_rows,
                rejected=len(validated.rejected_rows),
            )
            # Last, so the date's row is locked only for the commit, not the whole chunk:
            # a claim meanwhile is answered at once.
            repository.renew_lease(attempt.sync_date, attempt.holder_token, self._settings.lease_seconds)

    def _publish(
        self,
        repository: SignalsRepository,
        attempt: _Attempt,
        progress: StagingProgress,
        *,
        rows_resumed: int,
        rows_listed: int | None = None,
    ) -> SyncResult:
        """Plan exact counts, check every guard, then write (or, for a dry run, only count).

        `rows_listed`: this connection holds the publish lock and has listed the changes already.
        """
        sync_date = attempt.sync_date
        dry_run = attempt.options.dry_run
        delete_missing = self._settings.missing_rows == "delete"
        self._renew_lease(repository, attempt)
        with repository.publish_lock(self._settings.publish_lock_timeout_seconds), repository.transaction("publish"):
            plan = repository.plan_publish(
                sync_date,
                progress.rows_staged,
                pass_attempt=progress.attempt,
                delete_missing=delete_missing,
                rows_listed=rows_listed,
            )
            figures = replace(
                self._guard_figures(repository, sync_date, progress.rows_read, progress.rows_rejected, progress.rows_staged),
                delete_missing=delete_missing,
                rows_to_delete=plan.rows_to_delete,
                table_rows=plan.table_rows,
            )
            trips = evaluate_guards(figures, self._settings.guards, attempt.options.override_guards)
            result = SyncResult(
                sync_date=sync_date,
                status="dry_run" if dry_run else "completed",
                s3_key=attempt.key,
                attempt=attempt.claim.attempt,
                rows_processed=progress.rows_read,
                rows_rejected=progress.rows_rejected,
                rows_resumed=rows_resumed,
                rows_inserted=plan.rows_to_insert,
                rows_updated=plan.rows_to_update,
                rows_unchanged=plan.rows_unchanged,
                rows_deleted=plan.rows_to_delete,
            )
            if dry_run:
                result.guards_tripped = [trip.guard for trip in trips]
                result.reason = "dry run: nothing published" + (
                    f"; would trip {', '.join(result.guards_tripped)}" if trips else ""
                )
                repository.release_dry_run(sync_date, attempt.holder_token, attempt.claim.previous)
            else:
                self._raise_on_trips(trips)
                # Each statement checks its own count against the plan; a mismatch rolls back.
                repository.update_changed(sync_date, plan)
                repository.insert_new(sync_date, plan)
                if plan.rows_to_delete:
                    deleted = repository.delete_missing(sync_date, progress.attempt)
                    if deleted != plan.rows_to_delete:
                        raise TransientError(
                            f"deleted {deleted} rows, the plan counted {plan.rows_to_delete}: the table changed meanwhile"
                        )
                logger.info("published", extra={"counts": result.counts()})
            repository.discard_plan()
            self._complete(repository, attempt, result)
        return result

    @staticmethod
    def _drop_staging(repository: SignalsRepository, attempt: _Attempt, pass_attempt: int) -> None:
        """Drop this pass's staging, unless a newer pass owns the date's now, and any abandoned for a week."""
        assert attempt.info is not None
        if not repository.drop_pass(attempt.sync_date, attempt.info.etag, pass_attempt):
            logger.info("staging of %s belongs to a newer pass now: left in place", attempt.sync_date)
        # A date whose sync failed for good keeps its staging for a resume; after a week
        # nobody will resume it, so the next successful sync clears it away.
        for abandoned_date in repository.drop_abandoned_staging(ABANDONED_STAGING_DAYS):
            logger.info("dropped staging abandoned since a week or more: %s", abandoned_date)

    def _renew_lease(self, repository: SignalsRepository, attempt: _Attempt) -> None:
        """Push the lease out before a long transaction, in a short one of its own.

        The long transaction does not hold the metadata row, so that a concurrent
        invocation is answered at once rather than waiting on its lock; `complete` checks
        the claim again at the end and rolls everything back if it was lost meanwhile.
        """
        with repository.transaction("renew the lease"):
            repository.renew_lease(attempt.sync_date, attempt.holder_token, self._settings.lease_seconds)

    @staticmethod
    def _guard_figures(
        repository: SignalsRepository, sync_date: dt.date, rows_read: int, rows_rejected: int, rows_loaded: int
    ) -> GuardFigures:
        """What the guards judge, before any deletion is counted."""
        previous = repository.last_completed_before(sync_date)
        return GuardFigures(
            sync_date=sync_date,
            rows_processed=rows_read,
            rows_rejected=rows_rejected,
            rows_loaded=rows_loaded,
            previous_date=previous.sync_date if previous else None,
            previous_rows_loaded=previous.rows_loaded if previous else None,
            newest_completed_date=repository.newest_completed_date(),
            delete_missing=False,
            rows_to_delete=0,
            table_rows=0,
        )

    def _complete(self, repository: SignalsRepository, attempt: _Attempt, result: SyncResult) -> None:
        """Record the outcome in the metadata row (unless a dry run) and the run history."""
        result.duration_ms = self._elapsed_ms(attempt)
        if result.status == "completed":
            assert attempt.info is not None
            counts = {name: value or 0 for name, value in result.counts().items()}
            repository.complete(attempt.sync_date, attempt.holder_token, attempt.info.etag, counts, result.duration_ms)
        repository.finish_run(attempt.run_id, status=result.status, counts=result.counts(), duration_ms=result.duration_ms)

    @staticmethod
    def _raise_on_trips(trips: list[GuardTrip]) -> None:
        if trips:
            raise GuardTripped(
                ",".join(trip.guard for trip in trips),
                "; ".join(f"{trip.guard}: {trip.message}" for trip in trips),
                {trip.guard: trip.figures for trip in trips},
            )

    # -- failure and retry ------------------------------------------------------

    def _record_failure(self, attempt: _Attempt, error: Exception) -> bool | None:
        """Write the failure to the metadata row and the run history, on a fresh connection.

        True when recorded; False when another execution holds the date now (it answers for
        the date, so this one was superseded); None when the database could not be reached.
        """
        reason = str(error) or type(error).__name__
        duration_ms = self._elapsed_ms(attempt)
        try:
            repository = self._repository()
            try:
                with repository.transaction("record the failure"):
                    if attempt.options.dry_run:
                        # A dry run leaves the date as it found it, even when it fails.
                        still_ours = repository.release_dry_run(attempt.sync_date, attempt.holder_token, attempt.claim.previous)
                    else:
                        still_ours = repository.fail(attempt.sync_date, attempt.holder_token, reason, duration_ms)
                    if still_ours:
                        repository.finish_run(
                            attempt.run_id,
                            status="failed",
                            counts={},
                            duration_ms=duration_ms,
                            error_type=type(error).__name__,
                            error_message=reason,
                        )
            finally:
                repository.connection.close()
        except IngestError:
            # The database is unreachable too: the error itself still propagates to the
            # caller (and the dead-letter queue); the lease lets a later attempt take over.
            logger.exception("could not record the failure of %s", attempt.sync_date)
            return None
        if isinstance(error, GuardTripped) and still_ours:
            logger.warning("guard tripped", extra={"guard": error.guard, "figures": error.figures})
        return still_ours

    def _hand_over(self, attempt: _Attempt, handed: HandedOver) -> None:
        """Let the date go at once, its committed chunks kept, so the next run of the event resumes them.

        A dry run puts the date back as it found it instead; its staging stays for its next run too.
        """
        logger.warning("handing %s over: %s", attempt.sync_date, handed)
        try:
            repository = self._repository()
            try:
                with repository.transaction("hand the date over"):
                    if attempt.options.dry_run:
                        repository.release_dry_run(attempt.sync_date, attempt.holder_token, attempt.claim.previous)
                    else:
                        repository.hand_over(attempt.sync_date, attempt.holder_token, str(handed))
                    repository.finish_run(
                        attempt.run_id,
                        status="handed_over",
                        counts={},
                        duration_ms=self._elapsed_ms(attempt),
                        error_type=type(handed).__name__,
                        error_message=str(handed),
                    )
            finally:
                repository.connection.close()
        except IngestError:
            # Unrecorded, the lease still runs out by itself and the next run takes over.
            logger.exception("could not record the hand-over of %s", attempt.sync_date)

    def _superseded(self, attempt: _Attempt, cause: Exception) -> SyncResult:
        """Answer for an execution whose date another one took over: that one syncs the date now."""
        reason = f"superseded: another execution holds {attempt.sync_date} now and syncs it ({cause})"
        logger.info("sync skipped: %s", reason)
        duration_ms = self._elapsed_ms(attempt)
        repository = self._repository()
        try:
            with repository.transaction("record the hand-over"):
                repository.finish_run(
                    attempt.run_id,
                    status="skipped",
                    counts={},
                    duration_ms=duration_ms,
                    error_type=type(cause).__name__,
                    error_message=reason,
                )
        finally:
            repository.connection.close()
        return SyncResult(
            sync_date=attempt.sync_date,
            status="skipped",
            s3_key=attempt.key,
            attempt=attempt.claim.attempt,
            duration_ms=duration_ms,
            reason=reason,
        )

    def _retrying(self, action: str, step: Callable[[], StepResult]) -> StepResult:
        """Run `step`, retrying TransientError with capped exponential backoff and full jitter."""
        for retry in range(self._settings.transient_retries + 1):
            try:
                return step()
            except TransientError as error:
                if retry == self._settings.transient_retries:
                    raise
                delay = random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**retry))  # noqa: S311
                logger.warning("%s: transient error, retry %d in %.1fs: %s", action, retry + 1, delay, error)
                self._sleep(delay)
        raise AssertionError("unreachable")

    def _repository(self) -> SignalsRepository:
        return SignalsRepository(self._connect())

    @staticmethod
    def _elapsed_ms(attempt: _Attempt) -> int:
        return int((time.monotonic() - attempt.started) * 1000)
