"""Who may take a date: decide_claim on the metadata row as it stands (pure logic, no database)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from functions.ingest.claim_rules import LAST_ERROR_TYPE, LEASE_LIVE, ROW_LOCKED, ClaimRequest, decide_claim
from functions.ingest.reconcile import reconcile_reason
from functions.shared.errors import TransientError

DAY = dt.date(2026, 1, 30)
KEY = "passive_upsell_signals/dt=2026-01-30/data.parquet"
LATER = dt.datetime(2026, 1, 31, 6, 0, 0)


def request(**changes: Any) -> ClaimRequest:
    fields: dict[str, Any] = {
        "sync_date": DAY,
        "s3_key": KEY,
        "etag": "etag-a",
        "invocation_id": "req-1",
        "holder_token": "mine",
        "trigger": "s3",
        "force_resync": False,
        "dry_run": False,
    }
    return ClaimRequest(**(fields | changes))


def row(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "attempt": 3,
        "workflow_id": "req-0",
        "status": "started",
        "holder_token": "theirs",
        "holder_dry_run": False,
        "s3_key": KEY,
        "s3_etag": "etag-a",
        "completed_etag": None,
        "completed_at": None,
        "lease_expires_at": LATER,
        "error_message": None,
        "trigger_source": "s3",
        LEASE_LIVE: True,
    }
    return fields | changes


# A failure that passes with time: the same file syncs once its date is near.
FUTURE = "guard row_count_drift,future_date tripped: row_count_drift: ...; future_date: 2027-01-30 is after 2026-01-31 ..."


@pytest.mark.parametrize(
    ("current", "asked", "kind"),
    [
        (row(holder_token="mine"), request(), "claimed"),  # our own claim, its commit retried in-process
        (row(), request(), "in_progress"),  # a live holder of the same object
        (row(), request(etag="etag-b"), "claimed"),  # the newest file wins
        (row(s3_etag=None), request(), "claimed"),  # the fallback failing on a missing file: the file's event takes over
        (row(), request(etag=None), "in_progress"),  # a missing object never takes a date from one that has a file
        (row(holder_dry_run=True), request(), "claimed"),  # a real sync takes the date from a dry run
        (row(), request(dry_run=True), "in_progress"),  # a dry run never takes a live date
        (row(**{LEASE_LIVE: False}), request(dry_run=True), "in_progress"),  # nor one whose lease ran out
        (row(**{LEASE_LIVE: False}), request(), "claimed"),  # a real sync takes over an expired lease
        (row(status="completed", completed_etag="etag-a", completed_at=LATER), request(), "skipped"),
        (row(status="completed", completed_etag="etag-a", completed_at=LATER), request(force_resync=True), "claimed"),
        (row(status="completed", completed_etag="etag-a", completed_at=LATER), request(etag="etag-b"), "claimed"),
        (row(status="completed", completed_etag="etag-a", completed_at=LATER), request(etag=None), "skipped"),
        (row(status="failed"), request(), "claimed"),
        (row(status="failed", **{LAST_ERROR_TYPE: "GuardTripped"}), request(), "skipped"),
        (row(status="failed", **{LAST_ERROR_TYPE: "GuardTripped"}), request(trigger="schedule"), "skipped"),
        (row(status="failed", **{LAST_ERROR_TYPE: "GuardTripped"}), request(trigger="manual"), "claimed"),
        (row(status="failed", **{LAST_ERROR_TYPE: "GuardTripped"}), request(trigger="redrive:eventbridge_s3"), "claimed"),
        (row(status="failed", **{LAST_ERROR_TYPE: "GuardTripped"}), request(force_resync=True), "claimed"),
        (row(status="failed", **{LAST_ERROR_TYPE: "GuardTripped"}), request(etag="etag-b"), "claimed"),
        (row(status="failed", trigger_source="manual", **{LAST_ERROR_TYPE: "GuardTripped"}), request(), "claimed"),
        (row(status="failed", error_message=FUTURE, **{LAST_ERROR_TYPE: "GuardTripped"}), request(), "claimed"),
        (row(status="failed", error_message=FUTURE, **{LAST_ERROR_TYPE: "GuardTripped"}), request(trigger="schedule"), "claimed"),
        (row(status="failed", trigger_source="reconcile", **{LAST_ERROR_TYPE: "GuardTripped"}), request(), "skipped"),
        (row(status="failed", **{LAST_ERROR_TYPE: "GuardTripped"}), request(trigger="reconcile"), "skipped"),
        (row(status="failed", trigger_source="redrive:reconcile", **{LAST_ERROR_TYPE: "GuardTripped"}), request(), "claimed"),
        (row(status="failed", **{LAST_ERROR_TYPE: "TransientError"}), request(), "claimed"),
        (row(status="failed", **{LAST_ERROR_TYPE: None}), request(), "claimed"),
    ],
    ids=[
        "own-claim",
        "same-object-live",
        "newer-object",
        "file-behind-a-missing-one",
        "missing-behind-a-file",
        "real-behind-dry-run",
        "dry-run-behind-live",
        "dry-run-behind-expired",
        "real-behind-expired",
        "completed-same",
        "completed-forced",
        "completed-new-etag",
        "completed-file-gone",
        "failed",
        "failed-for-good-arrival-again",
        "failed-for-good-daily-run",
        "failed-for-good-manual-replay",
        "failed-for-good-redrive",
        "failed-for-good-forced",
        "failed-for-good-corrected-file",
        "failed-by-a-persons-replay-arrival-again",
        "failed-as-a-future-date-arrival-again",
        "failed-as-a-future-date-daily-run",
        "failed-by-the-reconcile-arrival-again",
        "failed-for-good-reconciled",
        "failed-by-a-redrive-arrival-again",
        "failed-for-a-passing-reason",
        "failed-without-a-failed-run",
    ],
)
def test_the_claim_decision(current: dict[str, Any], asked: ClaimRequest, kind: str) -> None:
    # Given the date's row as it stands, When an execution asks for the date, Then it gets this answer
    assert decide_claim(current, asked).kind == kind


def test_taking_a_locked_row_is_retried_not_answered() -> None:
    # Given a newer object, and the holder's open transaction locking the row (read without the lock)
    # When the newcomer asks, Then it is told to retry: its event must not be answered away
    with pytest.raises(TransientError, match="locked by its holder's open transaction"):
        decide_claim(row(**{ROW_LOCKED: True}), request(etag="etag-b"))


def test_an_answer_that_takes_nothing_needs_no_lock() -> None:
    # Given the same object behind a locked row, When a duplicate delivery asks, Then it is answered at once
    assert decide_claim(row(**{ROW_LOCKED: True}), request()).kind == "in_progress"


def test_a_claim_keeps_the_row_it_replaced_for_a_dry_run_to_restore() -> None:
    # Given a completed date, When a forced dry run claims it, Then the previous row comes back, computed fields left out
    current = row(status="completed", completed_etag="etag-a", completed_at=LATER, **{LEASE_LIVE: False})
    outcome = decide_claim(current, request(force_resync=True, dry_run=True))
    assert outcome.previous is not None and outcome.previous["status"] == "completed"
    assert LEASE_LIVE not in outcome.previous


def test_an_executions_own_claim_is_resumed_at_once_whatever_its_lease() -> None:
    # Given the date held under our token with a live lease (a run whose hand-over was never recorded)
    # When the next run of the same execution asks for the same object, Then it resumes the claim: same number, no wait
    outcome = decide_claim(row(holder_token="mine"), request())
    assert (outcome.kind, outcome.claim_number, outcome.own_claim) == ("claimed", 3, True)


def test_an_executions_own_claim_on_a_replaced_object_is_a_new_claim_not_a_resumed_one() -> None:
    # Given the date held under our token for etag-a, When a later run of the same execution meets a correction (etag-b)
    # Then it takes the date anew for the newer object (its staging is another pass), rather than resume etag-a's
    outcome = decide_claim(row(holder_token="mine"), request(etag="etag-b"))
    assert (outcome.kind, outcome.own_claim) == ("claimed", False)
    assert outcome.previous is not None


@pytest.mark.parametrize(
    "failed",
    [
        row(status="failed", **{LAST_ERROR_TYPE: "GuardTripped"}),
        row(status="failed", trigger_source="schedule", **{LAST_ERROR_TYPE: "CorruptFile"}),
        row(status="failed", trigger_source="reconcile", **{LAST_ERROR_TYPE: "GuardTripped"}),
        row(status="failed", trigger_source="manual", **{LAST_ERROR_TYPE: "GuardTripped"}),
        row(status="failed", trigger_source="manual", **{LAST_ERROR_TYPE: "CorruptFile"}),
        row(status="failed", trigger_source="redrive:reconcile", **{LAST_ERROR_TYPE: "GuardTripped"}),
        row(status="failed", error_message=FUTURE, **{LAST_ERROR_TYPE: "GuardTripped"}),
        row(status="failed", **{LAST_ERROR_TYPE: "TransientError"}),
    ],
    ids=["arrival", "daily-run", "reconcile", "replay-guard", "replay-bad-file", "redrive", "future-date", "passing"],
)
def test_the_reconcile_syncs_a_date_that_failed_on_its_file_exactly_when_its_lost_arrival_would_be_claimed(
    failed: dict[str, Any],
) -> None:
    # Given a date that failed on the very file it has, When the 06:00 run's reconcile looks at it
    reason = reconcile_reason(failed, "etag-a")
    # Then it syncs it exactly when the claim would let that file's arrival (or the reconcile) run it
    assert (reason is not None) == (decide_claim(failed, request(trigger="reconcile")).kind == "claimed"), reason
    assert (reason is not None) == (decide_claim(failed, request()).kind == "claimed"), reason


def test_the_reconcile_leaves_a_date_whose_continuation_stopped_for_no_progress_though_an_arrival_would_run_it() -> None:
    # Given a date its durable execution failed for making no progress (no failed run, so no error type)
    stopped = row(status="failed", **{LAST_ERROR_TYPE: None})
    # When the reconcile looks at it, Then it is left to its dead letter: every morning would stop it again
    assert reconcile_reason(stopped, "etag-a") is None
    assert decide_claim(stopped, request()).kind == "claimed"  # a new delivery of its arrival is let run
