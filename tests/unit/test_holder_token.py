"""A durable run's holder token: the same in every invocation that replays the run, another for any other run."""

from __future__ import annotations

from functions.ingest.continuation import holder_token_of

EXECUTION = "arn:aws:lambda:eu-west-1:123456789012:function:upsell-signals-sync-dev:live/durable-execution/a/b"
OTHER_EXECUTION = "arn:aws:lambda:eu-west-1:123456789012:function:upsell-signals-sync-dev:live/durable-execution/c/d"


def test_a_run_replayed_by_the_executions_next_invocation_claims_with_the_same_token() -> None:
    # Given one run of one execution, When its token is derived twice (the killed invocation, then the next one)
    # Then both are the same, and fit the ledger's holder_token CHAR(32)
    assert holder_token_of(EXECUTION, 2) == holder_token_of(EXECUTION, 2)
    assert len(holder_token_of(EXECUTION, 2)) == 32


def test_another_run_or_another_execution_claims_with_another_token() -> None:
    # Given a run, When the next run of the same execution, or the same run of a duplicate execution, derives its token
    # Then neither is the first run's: a duplicate start still finds the date held by someone else
    tokens = {holder_token_of(EXECUTION, 1), holder_token_of(EXECUTION, 2), holder_token_of(OTHER_EXECUTION, 1)}
    assert len(tokens) == 3
