"""The metadata ledger: one row per date, who holds it (claim, renew, check, hand over) and how it ended."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pymysql

from functions.ingest.claim_rules import LAST_ERROR_TYPE, LEASE_LIVE, ROW_LOCKED, ClaimOutcome, ClaimRequest, decide_claim
from functions.ingest.repository.names import DUPLICATE_KEY, LOCK_WAIT_TIMEOUT
from functions.ingest.repository.session import Session
from functions.shared.errors import ClaimLost, TransientError
from functions.shared.tables import METADATA, RUNS

# A date whose rows are in the table: a claim never clears the completed ETag.
_PUBLISHED = "completed_etag IS NOT NULL"


@dataclass(frozen=True)
class PublishedDate:
    """A date whose rows are in the table: its object's key and the ETag of the file it published."""

    sync_date: dt.date
    s3_key: str
    etag: str


@dataclass(frozen=True)
class CompletedSync:
    """A completed date, for the row-count and stale-date guards."""

    sync_date: dt.date
    rows_loaded: int


def _holder_values(request: ClaimRequest, claim_number: int, lease_seconds: int) -> tuple[Any, ...]:
    """s3_key, s3_etag, workflow_id, holder_token, holder_dry_run, durable_execution_arn, durable_run, trigger_source,
    attempt, lease seconds: a claim's values."""
    return (
        request.s3_key,
        request.etag,
        request.invocation_id,
        request.holder_token,
        request.dry_run,
        request.durable_execution_arn,
        request.durable_run,
        request.trigger,
        claim_number,
        lease_seconds,
    )


# The error type of the last failed real run of the date's latest claim: what its `failed` status is
# for. A dry run's failure leaves the date as it was; a stopped continuation records none (NULL).
_LAST_FAILURE = (
    f"SELECT r.error_type FROM {RUNS} r WHERE r.sync_date = m.sync_date AND r.attempt = m.attempt "
    "AND r.status = 'failed' AND NOT r.dry_run ORDER BY r.id DESC LIMIT 1"
)


class ClaimLedger:
    """SQL of upsell_signal_sync_metadata: every write is fenced by the holder's token."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def claim(self, request: ClaimRequest, lease_seconds: int) -> ClaimOutcome:
        """Atomically take the date, or say why not (call inside a transaction).

        Never waits on the metadata row's lock: a holder's open transaction (or a paused
        holder's, until the server ends its session) makes the claim answer from a plain
        read, or retry when the answer would be to take the date.
        """
        current = self._lock_metadata_row(request.sync_date)
        if current is None:
            return self._claim_new_date(request, lease_seconds)
        if current["status"] == "failed":
            current[LAST_ERROR_TYPE] = self._last_error_type(request.sync_date)
        decision = decide_claim(current, request)
        if decision.own_claim:
            # Resumed, perhaps after its lease ran out: held again from now, by this invocation (and run).
            self.session.execute(
                f"UPDATE {METADATA} SET workflow_id = %s, durable_run = %s, error_message = NULL, "
                "lease_expires_at = NOW() + INTERVAL %s SECOND WHERE sync_date = %s AND holder_token = %s",
                (request.invocation_id, request.durable_run, lease_seconds, request.sync_date, request.holder_token),
            )
            return decision
        if decision.kind != "claimed" or decision.previous is None:
            return decision  # skipped or in progress
        claim_number = self._next_claim_number(request.sync_date, int(current["attempt"]))
        self.session.execute(
            f"UPDATE {METADATA} SET status = 'started', s3_key = %s, s3_etag = %s, workflow_id = %s, "
            "holder_token = %s, holder_dry_run = %s, durable_execution_arn = %s, durable_run = %s, "
            "trigger_source = %s, attempt = %s, "
            "lease_expires_at = NOW() + INTERVAL %s SECOND, error_message = NULL, "
            "started_at = NOW(), completed_at = NULL, duration_ms = NULL, rows_processed = NULL, "
            "rows_inserted = NULL, rows_updated = NULL, rows_unchanged = NULL, rows_rejected = NULL, "
            "rows_deleted = NULL, rows_superseded = NULL WHERE sync_date = %s",
            (*_holder_values(request, claim_number, lease_seconds), request.sync_date),
        )
        return ClaimOutcome("claimed", claim_number, decision.reason, decision.previous)

    def _last_error_type(self, sync_date: dt.date) -> str | None:
        """What the date last failed of (see _LAST_FAILURE); a plain read, as the history's rows are not the claim's to lock."""
        row = self.session.fetch_one(f"SELECT ({_LAST_FAILURE}) FROM {METADATA} m WHERE m.sync_date = %s", (sync_date,))
        return str(row[0]) if row and row[0] is not None else None

    def _lock_metadata_row(self, sync_date: dt.date) -> dict[str, Any] | None:
        """The date's metadata row, locked; a busy row is read without the lock and marked so."""
        columns = f"*, lease_expires_at > NOW() AS {LEASE_LIVE}"
        try:
            row = self.session.fetch_dict(
                f"SELECT {columns} FROM {METADATA} WHERE sync_date = %s FOR UPDATE NOWAIT", (sync_date,)
            )
        except pymysql.err.OperationalError as error:
            if error.args[0] != LOCK_WAIT_TIMEOUT:
                raise
            # Only this statement failed; a consistent read of the row needs no lock.
            busy = self.session.fetch_dict(f"SELECT {columns} FROM {METADATA} WHERE sync_date = %s", (sync_date,))
            return None if busy is None else {**busy, ROW_LOCKED: True}
        return row

    def _claim_new_date(self, request: ClaimRequest, lease_seconds: int) -> ClaimOutcome:
        claim_number = self._next_claim_number(request.sync_date, 0)
        try:
            self.session.execute(
                f"INSERT INTO {METADATA} (sync_date, s3_key, s3_etag, workflow_id, holder_token, "
                "holder_dry_run, durable_execution_arn, durable_run, status, trigger_source, attempt, lease_expires_at, "
                "started_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'started', %s, %s, NOW() + INTERVAL %s SECOND, NOW())",
                (request.sync_date, *_holder_values(request, claim_number, lease_seconds)),
            )
        except pymysql.err.IntegrityError as error:
            if error.args[0] != DUPLICATE_KEY:
                raise
            raise TransientError(f"another invocation claimed {request.sync_date} at the same instant") from error
        return ClaimOutcome("claimed", claim_number)

    def _next_claim_number(self, sync_date: dt.date, current_claim_number: int) -> int:
        """One past every claim the date has had, dry runs included: numbers are never reused."""
        row = self.session.fetch_one(f"SELECT MAX(attempt) FROM {RUNS} WHERE sync_date = %s", (sync_date,))
        recorded = int(row[0]) if row and row[0] is not None else 0
        return max(current_claim_number, recorded) + 1

    def renew_lease(self, sync_date: dt.date, holder_token: str, lease_seconds: int) -> None:
        """Check we still hold the date and push the lease out (inside a transaction)."""
        self.check_holder(sync_date, holder_token)
        self.session.execute(
            f"UPDATE {METADATA} SET lease_expires_at = NOW() + INTERVAL %s SECOND WHERE sync_date = %s",
            (lease_seconds, sync_date),
        )

    def check_holder(self, sync_date: dt.date, holder_token: str) -> None:
        """ClaimLost unless this execution still holds the date; locks the row until the transaction ends."""
        holder = self.session.fetch_one(
            f"SELECT holder_token, status, attempt FROM {METADATA} WHERE sync_date = %s FOR UPDATE", (sync_date,)
        )
        if holder is None or holder[0] != holder_token or holder[1] != "started":
            now = "nobody" if holder is None else f"attempt {holder[2]}, {holder[1]}"
            raise ClaimLost(f"{sync_date} was taken over by another execution (now {now}); this one stops")

    def keep_alive(self, sync_date: dt.date, holder_token: str, lease_seconds: int) -> bool:
        """Push our lease out, if we still hold the date (autocommit); False once another execution has it."""
        self.session.execute(
            f"UPDATE {METADATA} SET lease_expires_at = NOW() + INTERVAL %s SECOND "
            "WHERE sync_date = %s AND holder_token = %s AND status = 'started'",
            (lease_seconds, sync_date, holder_token),
        )
        # Affected rows are 0 when the value did not change (two beats in one second): ask.
        held = self.session.fetch_one(
            f"SELECT 1 FROM {METADATA} WHERE sync_date = %s AND holder_token = %s AND status = 'started'",
            (sync_date, holder_token),
        )
        return held is not None

    def hand_over(self, sync_date: dt.date, holder_token: str, reason: str) -> bool:
        """Let the lease run out now, keeping the date started, so the next execution resumes at once."""
        return (
            self.session.execute(
                f"UPDATE {METADATA} SET lease_expires_at = NOW(), error_message = %s "
                "WHERE sync_date = %s AND holder_token = %s AND status = 'started'",
                (reason, sync_date, holder_token),
            )
            == 1
        )

    def complete(self, sync_date: dt.date, holder_token: str, etag: str, counts: dict[str, int], duration_ms: int) -> None:
        """Mark the date completed with its counts (inside the publish transaction)."""
        self.renew_lease(sync_date, holder_token, 0)
        self.session.execute(
            f"UPDATE {METADATA} SET status = 'completed', completed_etag = %s, lease_expires_at = NULL, "
            "completed_at = NOW(), duration_ms = %s, rows_processed = %s, rows_inserted = %s, rows_updated = %s, "
            "rows_unchanged = %s, rows_rejected = %s, rows_deleted = %s, rows_superseded = %s, error_message = NULL "
            "WHERE sync_date = %s",
            (
                etag,
                duration_ms,
                counts["rows_processed"],
                counts["rows_inserted"],
                counts["rows_updated"],
                counts["rows_unchanged"],
                counts["rows_rejected"],
                counts["rows_deleted"],
                counts["rows_superseded"],
                sync_date,
            ),
        )

    def fail(self, sync_date: dt.date, holder_token: str, reason: str, duration_ms: int) -> bool:
        """Mark our claim failed with the reason; False when another execution holds it now."""
        return (
            self.session.execute(
                f"UPDATE {METADATA} SET status = 'failed', error_message = %s, lease_expires_at = NULL, "
                "completed_at = NOW(), duration_ms = %s WHERE sync_date = %s AND holder_token = %s AND status = 'started'",
                (reason, duration_ms, sync_date, holder_token),
            )
            == 1
        )

    def fail_every_date_held_by(self, holder_token: str, reason: str) -> int:
        """Mark failed every date this holder (a durable execution) still holds for a real sync; how many."""
        return self.session.execute(
            f"UPDATE {METADATA} SET status = 'failed', error_message = %s, lease_expires_at = NULL, completed_at = NOW() "
            "WHERE holder_token = %s AND status = 'started' AND holder_dry_run = 0",
            (reason, holder_token),
        )

    def release_dry_run(self, sync_date: dt.date, holder_token: str, previous: dict[str, Any] | None) -> bool:
        """Put the metadata row back as it was before a dry run claimed the date; False if no longer ours."""
        if previous is None:
            return (
                self.session.execute(
                    f"DELETE FROM {METADATA} WHERE sync_date = %s AND holder_token = %s AND status = 'started'",
                    (sync_date, holder_token),
                )
                == 1
            )
        restored = {name: value for name, value in previous.items() if name not in ("id", "sync_date", ROW_LOCKED)}
        assignments = ", ".join(f"{name} = %({name})s" for name in restored)
        return (
            self.session.execute(
                f"UPDATE {METADATA} SET {assignments} "
                "WHERE sync_date = %(restore_date)s AND holder_token = %(restore_holder)s AND status = 'started'",
                {**restored, "restore_date": sync_date, "restore_holder": holder_token},
            )
            == 1
        )

    # -- what the guards compare against -----------------------------------------

    # A date's status says only how its latest claim stands: a re-sync under way, a failed
    # one or a dry run leaves the rows the date published in the table.
    def newest_completed_date(self) -> dt.date | None:
        """The newest date that has published, whatever its latest claim is doing."""
        row = self.session.fetch_one(f"SELECT MAX(sync_date) FROM {METADATA} WHERE {_PUBLISHED}")
        return row[0] if row else None

    def states_between(self, first: dt.date, last: dt.date) -> dict[dt.date, dict[str, Any]]:
        """The metadata rows of the dates from `first` to `last`, read without locks.

        With whether each lease is live, its holder's token, what triggered its latest claim, its
        error, and the error type of the last failed run of that claim (`last_error_type`).
        """
        rows = self.session.fetch_dicts(
            f"SELECT m.sync_date, m.status, m.s3_etag, m.completed_etag, m.holder_token, m.trigger_source, m.error_message, "
            f"m.lease_expires_at > NOW() AS {LEASE_LIVE}, "
            f"({_LAST_FAILURE}) AS {LAST_ERROR_TYPE} "
            f"FROM {METADATA} m WHERE m.sync_date BETWEEN %s AND %s",
            (first, last),
        )
        return {row["sync_date"]: row for row in rows}

    def completed_after(self, sync_date: dt.date) -> list[PublishedDate]:
        """Every date newer than `sync_date` that has published, oldest first: the dates whose files win over it."""
        rows = self.session.fetch_dicts(
            f"SELECT sync_date, s3_key, completed_etag FROM {METADATA} WHERE {_PUBLISHED} AND sync_date > %s ORDER BY sync_date",
            (sync_date,),
        )
        return [PublishedDate(row["sync_date"], row["s3_key"], row["completed_etag"]) for row in rows]

    def last_completed_before(self, sync_date: dt.date) -> CompletedSync | None:
        """The latest completed date before this one, with the rows it loaded: its day before in date order.

        Not the newest: an older date met after newer ones (a backfill in any order) is judged as
        date order would judge it.
        """
        row = self.session.fetch_one(
            f"SELECT sync_date, rows_processed - rows_rejected FROM {METADATA} "
            "WHERE status = 'completed' AND sync_date < %s ORDER BY sync_date DESC LIMIT 1",
            (sync_date,),
        )
        return CompletedSync(row[0], int(row[1])) if row else None
