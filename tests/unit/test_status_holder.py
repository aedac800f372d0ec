"""Which run of which durable execution holds a date, as the status text names it (functions/status/format.py)."""

from __future__ import annotations

from typing import Any

from functions.status.format import holder_words

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
