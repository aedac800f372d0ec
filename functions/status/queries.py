"""The SQL of the operator's status report: read-only, in one consistent snapshot, no locks taken."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pymysql

from functions.shared.db import fetch_dicts
from functions.shared.errors import translate_errors
from functions.shared.tables import METADATA, PROGRESS, REJECTED, RUNS


class StatusQueries:
    """History, one date's runs and rejected rows, and the progress of dates being synced."""

    def __init__(self, connection: pymysql.Connection[Any]) -> None:
        self.connection = connection

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read-only transaction: the server refuses any write in it, and plain reads lock nothing."""
        with translate_errors("read the sync status"):
            fetch_dicts(self.connection, "START TRANSACTION READ ONLY")
            try:
                yield
            finally:
                if self.connection.open:
                    self.connection.rollback()

    def recent_syncs(self, days: int) -> list[dict[str, Any]]:
        """The metadata rows of the last `days` dates, newest first."""
        return fetch_dicts(
            self.connection,
            "SELECT sync_date, status, trigger_source, attempt, rows_processed, rows_inserted, rows_updated, "
            "rows_unchanged, rows_rejected, rows_deleted, rows_superseded, duration_ms, started_at, completed_at, error_message "
            f"FROM {METADATA} WHERE sync_date >= CURRENT_DATE - INTERVAL %s DAY "
            "ORDER BY sync_date DESC",
            (days,),
        )

    def runs_for(self, sync_date: dt.date) -> list[dict[str, Any]]:
        """Every recorded invocation for a date, oldest first."""
        return fetch_dicts(
            self.connection,
            "SELECT started_at, attempt, status, trigger_source, workflow_id, force_resync, dry_run, rows_processed, "
            "rows_inserted, rows_updated, rows_unchanged, rows_rejected, rows_deleted, rows_superseded, rows_resumed, "
            f"duration_ms, error_type, error_message FROM {RUNS} WHERE sync_date = %s ORDER BY id",
            (sync_date,),
        )

    def date_row(self, sync_date: dt.date) -> dict[str, Any] | None:
        """The date's row in the claim ledger (its status and, failed, why); None when nothing claimed it."""
        rows = fetch_dicts(
            self.connection,
            "SELECT status, attempt, trigger_source, started_at, completed_at, error_message "
            f"FROM {METADATA} WHERE sync_date = %s",
            (sync_date,),
        )
        return rows[0] if rows else None

    def rejects_for(self, sync_date: dt.date, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """Rejected rows of the date's latest staging pass: (how many in all, the first `limit`).

        A pass that rejects nothing leaves no rows here. A pass still kept (under way, handed
        over, or failed for good) is the latest, and only its own rows are shown; once dropped,
        when the date's latest run that read the file completed (or dry-ran) counting none,
        earlier passes' rejects are not its own.
        """
        kept = fetch_dicts(self.connection, f"SELECT attempt FROM {PROGRESS} WHERE sync_date = %s", (sync_date,))
        if kept:
            pass_number = int(kept[0]["attempt"])
        else:
            latest = fetch_dicts(
                self.connection,
                f"SELECT status, rows_rejected FROM {RUNS} WHERE sync_date = %s "
                "AND status NOT IN ('skipped', 'in_progress') ORDER BY id DESC LIMIT 1",
                (sync_date,),
            )
            if latest and latest[0]["status"] in ("completed", "dry_run") and latest[0]["rows_rejected"] == 0:
                return 0, []
            newest = fetch_dicts(
                self.connection, f"SELECT MAX(attempt) AS attempt FROM {REJECTED} WHERE sync_date = %s", (sync_date,)
            )
            pass_number = int(newest[0]["attempt"] or 0)
        # DISTINCT: a pass started again under its own claim records its rows again (the table is append-only).
        total = fetch_dicts(
            self.connection,
            f"SELECT COUNT(DISTINCT source_row) AS total FROM {REJECTED} WHERE sync_date = %s AND attempt = %s",
            (sync_date, pass_number),
        )[0]["total"]
        rejects = fetch_dicts(
            self.connection,
            f"SELECT DISTINCT source_row, cdms_canonical_company_id, reasons, original_values FROM {REJECTED} "
            "WHERE sync_date = %s AND attempt = %s ORDER BY source_row LIMIT %s",
            (sync_date, pass_number, limit),
        )
        return int(total), rejects

    def syncs_in_progress(self, sync_dates: Sequence[dt.date]) -> list[dict[str, Any]]:
        """Of these dates, those claimed now (`started`), with their staging pass of the claimed object, if any.

        Times are the database's (UTC), so elapsed time needs no clock of ours.
        """
        if not sync_dates:
            return []
        dates = ", ".join(["%s"] * len(sync_dates))
        return fetch_dicts(
            self.connection,
            "SELECT m.sync_date, m.attempt, m.holder_dry_run AS dry_run, m.started_at, m.lease_expires_at, "
            "m.lease_expires_at > NOW() AS lease_live, TIMESTAMPDIFF(SECOND, m.started_at, NOW()) AS elapsed_seconds, "
            "TIMESTAMPDIFF(SECOND, m.lease_expires_at, NOW()) AS lease_lapsed_seconds, "
            "m.workflow_id AS invocation_id, m.durable_execution_arn, m.durable_run, "
            # The holder's own last run: a duplicate delivery's `in_progress`, or a `skipped`, is another's answer.
            f"(SELECT r.status FROM {RUNS} r WHERE r.sync_date = m.sync_date AND r.status NOT IN ('in_progress', 'skipped') "
            "ORDER BY r.id DESC LIMIT 1) AS last_run_status, "
            "p.attempt AS pass_number, p.rows_read, p.rows_in_file, p.rows_staged, p.rows_rejected, "
            "p.chunks_committed, p.staging_complete, p.updated_at AS progress_at "
            f"FROM {METADATA} m "
            f"LEFT JOIN {PROGRESS} p ON p.sync_date = m.sync_date AND p.s3_etag = m.s3_etag "
            f"WHERE m.status = 'started' AND m.sync_date IN ({dates})",
            tuple(sync_dates),
        )
