"""The operator's status report, as the status function (and the ingest) answer `{"action": "status"}`: reads only.

The same JSON-ready report feeds `scripts/status` locally (from the database) and in AWS
(through the function), so both print the same thing (format.py).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pymysql

from functions.ingest.actions import StatusRequest
from functions.shared.contract import CONTINUATION_PAUSE_SECONDS
from functions.status.queries import StatusQueries

# After a hand-over, the execution's next run claims the date once its pause is over and it has
# started (a cold start, the download's HEAD): a minute is ample. Longer, and the run is late:
# throttled (reserved concurrency), or its execution was stopped or failed.
NEXT_RUN_CLAIMS_WITHIN_SECONDS = CONTINUATION_PAUSE_SECONDS + 60
# Lambda returns at most 6 MB to a synchronous invoke (Lambda quotas): a date's rejected rows
# (each up to five text values of 1 KiB, escaped twice in JSON), or the dates of a long history
# (each with its whole reason), are listed up to this, with room to spare.
ANSWER_BYTES = 5 * 1024 * 1024


def read_status(connect_database: Callable[[], pymysql.Connection[Any]], request: StatusRequest) -> dict[str, Any]:
    """The report on a connection of its own, closed after: what the functions and `scripts/status` answer."""
    connection = connect_database()
    try:
        return build_status(connection, request)
    finally:
        connection.close()


def build_status(connection: pymysql.Connection[Any], request: StatusRequest) -> dict[str, Any]:
    """History of the last days, or one date's runs and rejected rows; with the progress of dates syncing now."""
    queries = StatusQueries(connection)
    with queries.snapshot():
        if request.sync_date is None:
            syncs = queries.recent_syncs(request.days)
            running = _progress_by_date(queries, [row["sync_date"] for row in syncs if row["status"] == "started"])
            history: dict[str, Any] = {"action": "status", "days": request.days, "syncs": []}
            listed = [_json_row(row) | {"progress": running.get(row["sync_date"])} for row in syncs]
            # Newest first: what is cut to fit is the oldest dates.
            history["syncs"], history["syncs_cut_to_fit"] = _as_many_as_fit(listed, ANSWER_BYTES - len(json.dumps(history)))
            return history
        date_row = queries.date_row(request.sync_date)
        runs = queries.runs_for(request.sync_date)
        rejects_total, rejects = queries.rejects_for(request.sync_date, request.rejects)
        running = _progress_by_date(queries, [request.sync_date])
    report: dict[str, Any] = {
        "action": "status",
        "sync_date": request.sync_date.isoformat(),
        "date": None if date_row is None else _json_row(date_row),
        "progress": running.get(request.sync_date),
        "runs": [_json_row(row) | {"force_resync": bool(row["force_resync"]), "dry_run": bool(row["dry_run"])} for row in runs],
        "rejects_total": rejects_total,
        "rejects": [],
    }
    room = ANSWER_BYTES - len(json.dumps(report))
    report["rejects"], report["rejects_cut_to_fit"] = _as_many_as_fit([_json_row(row) for row in rejects], room)
    return report


def _as_many_as_fit(rows: list[dict[str, Any]], room: int) -> tuple[list[dict[str, Any]], bool]:
    """The first rows whose JSON fits in `room` bytes; and whether any were left out."""
    used = 0
    for count, row in enumerate(rows):
        used += len(json.dumps(row)) + 2  # and the list's ", "
        if used > room:
            return rows[:count], True
    return rows, False


def _progress_by_date(queries: StatusQueries, sync_dates: list[dt.date]) -> dict[dt.date, dict[str, Any]]:
    return {row["sync_date"]: describe_progress(row) for row in queries.syncs_in_progress(sync_dates)}


def describe_progress(row: dict[str, Any]) -> dict[str, Any]:
    """Where a claimed date's sync stands: its phase, rows read of rows in the file, elapsed, an estimate of what is left.

    The estimate extrapolates this attempt's own pace, so it exists only while this attempt
    stages a pass it began itself (a resumed pass's earlier rows were not read at this pace).
    """
    elapsed = int(row["elapsed_seconds"] or 0)
    rows_read, rows_in_file = row["rows_read"], row["rows_in_file"]
    handed_over = not row["lease_live"] and row["last_run_status"] == "handed_over"
    if handed_over and _next_run_may_yet_come(row):
        phase = "handed_over"  # a run stopped at a chunk boundary; the execution's next run resumes after its pause
    elif not row["lease_live"]:
        # The holder died or timed out; or, after a hand-over, the next run is late: throttled, or
        # its execution stopped. A retry, a redrive or the 06:00 reconcile takes over and resumes.
        phase = "stalled"
    elif rows_read is None:
        phase = "starting"  # fetching the file, or a first load into the empty table (committed only at its end)
    elif row["staging_complete"]:
        phase = "publishing"
    else:
        phase = "staging"
    seconds_left = None
    if phase == "staging" and rows_in_file and rows_read and row["pass_number"] == row["attempt"] and elapsed > 0:
        seconds_left = round(elapsed * (rows_in_file - rows_read) / rows_read)
    return {
        "phase": phase,
        "attempt": row["attempt"],
        "dry_run": bool(row["dry_run"]),
        "rows_read": rows_read,
        "rows_in_file": rows_in_file,
        "rows_staged": row["rows_staged"],
        "rows_rejected": row["rows_rejected"],
        "chunks_committed": row["chunks_committed"],
        "elapsed_seconds": elapsed,
        "staging_seconds_left": seconds_left,
        "lease_expires_at": _json_value(row["lease_expires_at"]),
        "progress_at": _json_value(row["progress_at"]),
        # Who holds it: the invocation, and for a durable function its execution and which run of it.
        "invocation_id": row["invocation_id"],
        "durable_execution_arn": row["durable_execution_arn"],
        "durable_run": row["durable_run"],
        "next_run_overdue": phase == "stalled" and handed_over,
    }


def _next_run_may_yet_come(row: dict[str, Any]) -> bool:
    """Whether a hand-over is recent enough that the execution's next run may still claim the date."""
    lapsed = row["lease_lapsed_seconds"]
    return lapsed is not None and lapsed <= NEXT_RUN_CLAIMS_WITHIN_SECONDS


def _json_value(value: Any) -> Any:
    """Dates as YYYY-MM-DD, times (UTC, as the sessions store them) as ISO 8601 with Z."""
    if isinstance(value, dt.datetime):
        return value.replace(microsecond=0).isoformat() + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    return {name: _json_value(value) for name, value in row.items()}
