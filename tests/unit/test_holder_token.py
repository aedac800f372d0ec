"""A durable execution's holder token: the same for every run of the execution, another for any other execution."""

from __future__ import annotations

from functions.ingest.continuation import holder_token_of

EXECUTION = "arn:aws:lambda:eu-west-1:123456789012:function:upsell-signals-sync-dev:7/durable-execution/a/b"
OTHER_EXECUTION = "arn:aws:lambda:eu-west-1:123456789012:function:upsell-signals-sync-dev:7/durable-execution/c/d"


def test_every_run_of_an_execution_in_every_invocation_claims_with_the_same_token() -> None:
    # Given one execution, When its token is derived again (a run replayed after a kill, or the run after a
    # hand-over, in another invocation) Then it is the same, and fits the ledger's holder_token CHAR(32)
    assert holder_token_of(EXECUTION) == holder_token_of(EXECUTION)
    assert len(holder_token_of(EXECUTION)) == 32


def test_another_execution_claims_with_another_token() -> None:
    # Given an execution, When a duplicate start or a redrive (another execution) derives its token
    # Then it is not the first's: the duplicate finds the date held by someone else, never shares the claim
    assert holder_token_of(EXECUTION) != holder_token_of(OTHER_EXECUTION)
