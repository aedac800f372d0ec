"""What operators read (scripts/status): the sync history, one date's runs and its rejected rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pymysql

from functions.ingest.repository.names import METADATA, REJECTED, RUNS
from functions.ingest.repository.session import Session


class StatusReports:
    """Read-only queries over the ledger, the run history and the rejected rows, on a connection of their own."""

    def __init__(self, connection: pymysql.Connection[Any]) -> None:
        self.connection = connection
        self.session = Session(connection)

    def recent_syncs(self, days: int) -> list[dict[str, Any]]:
        """The metadata rows of the last `days` dates, newest first."""
        return self.session.fetch_dicts(
            "SELECT sync_date, status, trigger_source, attempt, rows_processed, rows_inserted, rows_updated, "
            "rows_unchanged, rows_rejected, rows_deleted, duration_ms, started_at, completed_at, error_message "
            f"FROM {METADATA} WHERE sync_date >= CURRENT_DATE - INTERVAL %s DAY "
            "ORDER BY sync_date DESC",
            (days,),
        )

    def runs_for(self, sync_date: dt.date) -> list[dict[str, Any]]:
        """Every recorded invocation for a date, oldest first."""
        return self.session.fetch_dicts(
            "SELECT started_at, attempt, status, trigger_source, workflow_id, force_resync, dry_run, rows_processed, "
            "rows_inserted, rows_updated, rows_unchanged, rows_rejected, rows_deleted, rows_resumed, duration_ms, "
            f"error_type, error_message FROM {RUNS} WHERE sync_date = %s ORDER BY id",
            (sync_date,),
        )

    def rejects_for(self, sync_date: dt.date, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """Rejected rows of the date's latest staging pass: (how many in all, the first `limit`)."""
        with self.connection.cursor(pymysql.cursors.DictCursor) as cursor:
            cursor.execute(
                f"SELECT COUNT(*) AS total, MAX(attempt) AS attempt FROM {REJECTED} WHERE sync_date = %s "
                f"AND attempt = (SELECT MAX(attempt) FROM {REJECTED} WHERE sync_date = %s)",
                (sync_date, sync_date),
            )
            summary = cursor.fetchone()
            cursor.execute(
                f"SELECT source_row, cdms_canonical_company_id, reasons, original_values FROM {REJECTED} "
                "WHERE sync_date = %s AND attempt = %s ORDER BY source_row LIMIT %s",
                (sync_date, summary["attempt"] if summary else 0, limit),
            )
            return int(summary["total"] if summary else 0), [dict(row) for row in cursor.fetchall()]
