"""The status report as text tables, for `scripts/status` and the demo; the same whether the
report came from the database or from the deployed function."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

REASON_WIDTH = 90
_ISO_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})Z$")
# "superseded"/"sup": rows a newer date's file carries, left as that date wrote them (a backfill's older date).
HISTORY_COLUMNS = (
    *("date", "status", "trigger", "attempt", "rows", "inserted", "updated"),
    *("unchanged", "rejected", "deleted", "superseded"),
)
RUN_COLUMNS = (
    *("started", "attempt", "status", "trigger", "force", "dry", "rows"),
    *("ins", "upd", "same", "rej", "del", "sup", "resumed"),
)


def cell(value: Any) -> str:
    """One value as a table shows it: times without the T and Z, counts with separators, long text cut."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    text = " ".join(str(value).split())
    if match := _ISO_TIME.match(text):
        return f"{match[1]} {match[2]}"
    return text if len(text) <= REASON_WIDTH else text[: REASON_WIDTH - 1] + "…"


def duration(milliseconds: int | None) -> str:
    return "-" if milliseconds is None else f"{milliseconds / 1000:.1f}s"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(header), *(len(row[i]) for row in rows)) if rows else len(header) for i, header in enumerate(headers)]
    lines = ["  ".join(header.ljust(width) for header, width in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)) for row in rows]
    return lines


def progress_line(sync_date: str, progress: dict[str, Any]) -> str:
    """One line on a date being synced now: phase, rows read of rows in the file, elapsed, estimate."""
    of_file = f" of {progress['rows_in_file']:,}" if progress["rows_in_file"] else ""
    rows = f", {cell(progress['rows_read'])}{of_file} rows read" if progress["rows_read"] is not None else ""
    left = progress["staging_seconds_left"]
    estimate = f", about {left}s of staging left, then the publish" if left is not None else ""
    dry = " (dry run)" if progress["dry_run"] else ""
    stalled = ""
    if progress["phase"] == "stalled" and progress.get("next_run_overdue"):
        stalled = (
            f"; handed over, its lease ran out at {cell(progress['lease_expires_at'])} and run {progress['durable_run'] + 1} "
            "is overdue: throttled, or its execution was stopped (aws lambda get-durable-execution tells which)"
        )
    elif progress["phase"] == "stalled":
        stalled = f"; its lease ran out at {cell(progress['lease_expires_at'])}, the next attempt resumes"
    return (
        f"{sync_date}: attempt {progress['attempt']}{dry} {progress['phase']}{rows}, "
        f"{progress['elapsed_seconds']}s since it was claimed{estimate}{stalled}{holder_words(progress)}"
    )


def holder_words(progress: dict[str, Any]) -> str:
    """Which run of which durable execution holds the date (and what comes next), or which invocation."""
    run, execution = progress.get("durable_run"), progress.get("durable_execution_arn")
    if execution is None:
        return f"; held by invocation {progress['invocation_id']}" if progress.get("invocation_id") else ""
    # arn:...:function:<function>:<version>/durable-execution/<execution name>/<execution id> (StopDurableExecution's pattern)
    name = execution.split("/durable-execution/", 1)[1].split("/", 1)[0] if "/durable-execution/" in execution else execution
    if progress["phase"] == "handed_over" and run is not None:
        return f"; run {run} of durable execution {name} handed over, run {run + 1} resumes after its pause ({execution})"
    return f"; held by run {run} of durable execution {name} ({execution})"


def format_history(report: dict[str, Any]) -> str:
    syncs = report["syncs"]
    lines = [f"Sync history, last {report['days']} days (times UTC)", ""]
    lines += table(
        [*HISTORY_COLUMNS, "took", "finished", "reason"],
        [
            [
                s["sync_date"],
                s["status"],
                cell(s["trigger_source"]),
                *(cell(s[name]) for name in ("attempt", "rows_processed", "rows_inserted", "rows_updated")),
                *(cell(s[name]) for name in ("rows_unchanged", "rows_rejected", "rows_deleted")),
                cell(s.get("rows_superseded")),  # .get: a status function deployed before it answers without
                duration(s["duration_ms"]),
                cell(s["completed_at"]),
                cell(s["error_message"]),
            ]
            for s in syncs
        ],
    )
    if not syncs:
        lines.append("(no syncs recorded in this window)")
    if report.get("syncs_cut_to_fit"):
        lines.append(f"(the {len(syncs)} newest dates, as many as fit in one answer: ask for fewer days, or one date)")
    running = [progress_line(s["sync_date"], s["progress"]) for s in syncs if s.get("progress")]
    if running:
        lines += ["", "In progress now:", *running]
    return "\n".join(lines)


def date_line(sync_date: str, date: dict[str, Any] | None, *, any_runs: bool) -> str:
    """What the claim ledger says of the date: its status and, failed, why (a run's row may not say it)."""
    if date is None:
        if any_runs:
            return f"{sync_date}: no claim recorded"
        return (
            f"Nothing is recorded for {sync_date}: no event for it reached the ingest, or it was refused "
            "(its cause is in the dead-letter queue)"
        )
    line = f"{sync_date}: {date['status']} (attempt {cell(date['attempt'])})"
    if date["status"] == "failed" and date.get("error_message"):
        return f"{line}: {' '.join(str(date['error_message']).split())}"
    if date["status"] == "completed" and date.get("completed_at"):
        return f"{line}, at {cell(date['completed_at'])}"
    return line


def format_date(report: dict[str, Any]) -> str:
    sync_date = report["sync_date"]
    claimed = date_line(sync_date, report.get("date"), any_runs=bool(report["runs"]))
    lines = [f"Every invocation for {sync_date} (times UTC)", "", claimed, ""]
    if report.get("progress"):
        lines += ["In progress now: " + progress_line(sync_date, report["progress"]), ""]
    runs = [(r, f"{r['error_type']}: {r['error_message']}" if r["error_type"] else r["error_message"]) for r in report["runs"]]
    lines += table(
        [*RUN_COLUMNS, "took", "reason"],
        [
            [
                cell(r["started_at"]),
                cell(r["attempt"]),
                r["status"],
                cell(r["trigger_source"]),
                cell(r["force_resync"]),
                cell(r["dry_run"]),
                *(cell(r[name]) for name in ("rows_processed", "rows_inserted", "rows_updated", "rows_unchanged")),
                *(cell(r[name]) for name in ("rows_rejected", "rows_deleted")),
                cell(r.get("rows_superseded")),
                cell(r["rows_resumed"]),
                duration(r["duration_ms"]),
                cell(reason),
            ]
            for r, reason in runs
        ],
    )
    cut = [(r, reason) for r, reason in runs if reason and cell(reason) != " ".join(reason.split())]
    if cut:  # the table cuts long reasons; the cause of a failure is what an operator came for
        lines += ["", "Reasons in full:"]
        lines += [f"  {cell(r['started_at'])} attempt {r['attempt']}: {' '.join(reason.split())}" for r, reason in cut]
    total, rejects = report["rejects_total"], report["rejects"]
    shown = f" (first {len(rejects)})" if total > len(rejects) else ""
    if report.get("rejects_cut_to_fit"):
        shown = f" (first {len(rejects)}, as many as fit in one answer)"
    lines += ["", f"Rejected rows of the latest staging pass: {total:,}{shown}"]
    if rejects:
        lines.append("")
        lines += table(
            ["row", "company id", "reasons", "original values"],
            [
                [cell(r["source_row"]), cell(r["cdms_canonical_company_id"]), cell(r["reasons"]), cell(r["original_values"])]
                for r in rejects
            ],
        )
    return "\n".join(lines)


def format_status(report: dict[str, Any]) -> str:
    """The report as `scripts/status` prints it: history, or one date in detail."""
    return format_date(report) if "sync_date" in report else format_history(report)
