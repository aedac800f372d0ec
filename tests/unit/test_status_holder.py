"""Which run of which durable execution holds a date, as the status text names it (functions/status/format.py)."""

from __future__ import annotations

from typing import Any

from functions.status.format import format_date, holder_words, progress_line
from functions.status.report import describe_progress

ARN = "arn:aws:lambda:eu-west-1:123456789012:function:upsell-signals-sync-prod:7/durable-execution/2026-01-30-a1b2/0f9e"


def progress(**changes: Any) -> dict[str, Any]:
    return {"phase": "staging", "invocation_id": "req-9", "durable_execution_arn": ARN, "durable_run": 3} | changes


def test_a_run_holding_the_date_is_named_with_its_execution() -> None:
    # Given run 3 of an execution staging the date, When the status names the holder, Then by run and execution name
    assert holder_words(progress()) == f"; held by run 3 of durable execution 2026-01-30-a1b2 ({ARN})"


def test_a_handed_over_date_says_which_run_comes_next() -> None:
    # Given run 3 handed over, When the status names the holder, Then it says run 4 resumes after the pause
    assert holder_words(progress(phase="handed_over")) == (
        f"; run 3 of durable execution 2026-01-30-a1b2 handed over, run 4 resumes after its pause ({ARN})"
    )


def test_a_date_held_outside_a_durable_execution_names_its_invocation() -> None:
    # Given a claim taken by a plain invocation (./scripts/invoke, a test), Then the status names the invocation
    assert holder_words(progress(durable_execution_arn=None, durable_run=None)) == "; held by invocation req-9"


def test_a_holder_that_died_without_handing_over_is_stalled_but_no_next_run_is_overdue() -> None:
    # Given a claim whose lease ran out with its holder's last run not a hand-over (killed, timed out)
    row = {
        "elapsed_seconds": 400, "rows_read": 5_000, "rows_in_file": 20_000, "lease_live": 0, "last_run_status": "started",
        "lease_lapsed_seconds": 300, "staging_complete": 0, "pass_number": 1, "attempt": 1, "dry_run": 0, "rows_staged": 5_000,
        "rows_rejected": 0, "chunks_committed": 1, "lease_expires_at": None, "progress_at": None,
        "invocation_id": "req-9", "durable_execution_arn": ARN, "durable_run": 3,
    }
    # When the status describes it, Then it is stalled, awaiting the next attempt, not an overdue run of a hand-over
    described = describe_progress(row)
    assert (described["phase"], described["next_run_overdue"]) == ("stalled", False)
    assert "the next attempt resumes" in progress_line("2026-01-30", described)
    assert "handed over" not in progress_line("2026-01-30", described)


def test_a_reason_the_runs_table_cuts_is_printed_in_full_below_it() -> None:
    # Given a date whose failed run's reason is longer than the table shows, and one with a short reason
    long_reason = "no file at s3://signals/passive_upsell_signals/dt=2026-01-30/data.parquet " + "and a long tail " * 10
    run = {
        "started_at": "2026-01-30T06:00:01Z", "attempt": 1, "status": "failed", "trigger_source": "schedule",
        "force_resync": False, "dry_run": False, "rows_processed": None, "rows_inserted": None, "rows_updated": None,
        "rows_unchanged": None, "rows_rejected": None, "rows_deleted": None, "rows_resumed": None, "duration_ms": 10,
        "error_type": "MissingObject", "error_message": long_reason,
    }  # fmt: skip
    short = run | {"started_at": "2026-01-30T07:00:01Z", "attempt": 2, "error_message": "short"}
    report = {"sync_date": "2026-01-30", "progress": None, "runs": [run, short], "rejects_total": 0, "rejects": []}
    # When the per-date status is printed
    text = format_date(report)
    # Then the table shows the start of the long reason, and the whole of it follows under "Reasons in full"
    table_part, full_part = text.split("Reasons in full:")
    assert f"MissingObject: {long_reason[:40]}" in table_part and long_reason.strip() not in table_part
    assert full_part.strip().split("\n\n")[0].splitlines() == [f"2026-01-30 06:00:01 attempt 1: MissingObject: {long_reason.strip()}"]
