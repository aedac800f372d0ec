"""The run history: one row per invocation of a date, whatever it ended as."""

from __future__ import annotations

import datetime as dt

from functions.ingest.repository.session import Session
from functions.shared.tables import RUNS


class RunHistory:
    """SQL of upsell_signal_sync_runs."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def close_abandoned_runs(self, sync_date: dt.date, taken_by_claim: int) -> int:
        """Mark runs of the date still `started` (their process died, or stalled) as failed: taken over."""
        return self.session.execute(
            f"UPDATE {RUNS} SET status = 'failed', error_type = 'TakenOver', "
            "error_message = CONCAT('no word from this run; attempt ', %s, ' took the date over'), "
            "finished_at = NOW(3), duration_ms = TIMESTAMPDIFF(MICROSECOND, started_at, NOW(3)) DIV 1000 "
            "WHERE sync_date = %s AND status = 'started' AND attempt < %s",
            (taken_by_claim, sync_date, taken_by_claim),
        )

    def close_resumed_runs(self, sync_date: dt.date, claim_number: int) -> int:
        """Mark runs of the claim still `started` as failed: their invocation died, and this one resumes the claim."""
        return self.session.execute(
            f"UPDATE {RUNS} SET status = 'failed', error_type = 'TakenOver', "
            "error_message = CONCAT('no word from this run; a later run resumed attempt ', %s), "
            "finished_at = NOW(3), duration_ms = TIMESTAMPDIFF(MICROSECOND, started_at, NOW(3)) DIV 1000 "
            "WHERE sync_date = %s AND status = 'started' AND attempt = %s",
            (claim_number, sync_date, claim_number),
        )

    def start_run(
        self,
        *,
        sync_date: dt.date,
        claim_number: int,
        invocation_id: str,
        trigger: str,
        s3_key: str,
        etag: str | None,
        force_resync: bool,
        dry_run: bool,
        status: str = "started",
        reason: str | None = None,
    ) -> int:
        """Add this invocation to the run history; returns the run's id."""
        self.session.execute(
            f"INSERT INTO {RUNS} (sync_date, attempt, workflow_id, trigger_source, s3_key, s3_etag, "
            "force_resync, dry_run, status, error_message, finished_at, duration_ms) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, IF(%s = 'started', NULL, NOW(3)), IF(%s = 'started', NULL, 0))",
            (
                sync_date,
                claim_number,
                invocation_id,
                trigger,
                s3_key,
                etag,
                force_resync,
                dry_run,
                status,
                reason,
                status,
                status,
            ),
        )
        return int(self.session.connection.insert_id())  # type: ignore[no-untyped-call]

    def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        counts: dict[str, int | None],
        duration_ms: int,
        error_type: str | None = None,
        error_message: str | None = None,
    ) -> None:
        self.session.execute(
            f"UPDATE {RUNS} SET status = %s, rows_processed = %s, rows_inserted = %s, "
            "rows_updated = %s, rows_unchanged = %s, rows_rejected = %s, rows_deleted = %s, rows_superseded = %s, "
            "rows_resumed = %s, "
            "error_type = %s, error_message = %s, finished_at = NOW(3), duration_ms = %s WHERE id = %s",
            (
                status,
                counts.get("rows_processed"),
                counts.get("rows_inserted"),
                counts.get("rows_updated"),
                counts.get("rows_unchanged"),
                counts.get("rows_rejected"),
                counts.get("rows_deleted"),
                counts.get("rows_superseded"),
                counts.get("rows_resumed"),
                error_type,
                error_message,
                duration_ms,
                run_id,
            ),
        )

    def completed_counts(self, run_id: int) -> dict[str, int | None] | None:
        """The counts of run `run_id` if it is recorded completed (its publish committed); None if not."""
        names = [f"rows_{count}" for count in ("processed", "inserted", "updated", "unchanged", "rejected", "deleted")]
        names += ["rows_resumed", "rows_superseded"]
        row = self.session.fetch_one(f"SELECT {', '.join(names)} FROM {RUNS} WHERE id = %s AND status = 'completed'", (run_id,))
        return None if row is None else dict(zip(names, row, strict=True))

    def rows_published(self, sync_date: dt.date, etag: str) -> int:
        """The rows the run that completed `sync_date` from the file `etag` read (0 if none is on record).

        From the history: a later claim of the date (a dry run, a re-sync) clears the ledger's counts.
        """
        row = self.session.fetch_one(
            f"SELECT rows_processed FROM {RUNS} WHERE sync_date = %s AND status = 'completed' AND s3_etag = %s "
            "ORDER BY id DESC LIMIT 1",
            (sync_date, etag),
        )
        return int(row[0] or 0) if row else 0
