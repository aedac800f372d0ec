"""The scaled timings tests run on keep every relation the deployment has."""

from __future__ import annotations

import pytest

from functions.shared.contract import CLAIM_LEASE_SECONDS, HEARTBEATS_PER_LEASE, LAMBDA_FIRST_RETRY_SECONDS
from functions.shared.settings import DEFAULT_TRANSIENT_WAIT_SECONDS, SettingsError, load_ingest_settings
from tests import lambda_timing


def lapses_within(lease_seconds: float) -> float:
    """The longest a dead holder's lease lasts: a lease after its last beat, which came up to a beat before."""
    return lease_seconds * (1 + 1 / HEARTBEATS_PER_LEASE)


def test_a_killed_holders_lease_lapses_before_lambdas_first_retry_deployed_and_scaled() -> None:
    # Given the lease the stack deploys and the one tests use
    # When each is set against Lambda's first retry at its own scale
    # Then both lapse before the retry comes
    assert lapses_within(CLAIM_LEASE_SECONDS) < LAMBDA_FIRST_RETRY_SECONDS
    assert lapses_within(lambda_timing.LEASE_SECONDS) < lambda_timing.FIRST_RETRY_SECONDS


def test_a_database_outage_is_waited_for_in_process_deployed_and_scaled() -> None:
    # Given an RDS failover's outage and the in-process wait for transient faults
    # When compared at both scales
    # Then the wait outlasts the outage both times
    assert DEFAULT_TRANSIENT_WAIT_SECONDS > 120
    assert lambda_timing.TRANSIENT_WAIT_SECONDS > lambda_timing.DATABASE_OUTAGE_SECONDS


def test_the_scaled_lease_is_the_deployed_one_scaled() -> None:
    # Given the deployed lease
    # When scaled as the tests scale Lambda's retry
    # Then it is the lease the tests run with, and the settings accept it
    scaled = CLAIM_LEASE_SECONDS * lambda_timing.SCALE
    assert abs(lambda_timing.LEASE_SECONDS - scaled) <= 0.5
    assert load_ingest_settings({"SIGNALS_BUCKET": "b", "CLAIM_LEASE_SECONDS": str(lambda_timing.LEASE_SECONDS)}).lease_seconds == lambda_timing.LEASE_SECONDS


def test_a_lease_that_would_outlive_lambdas_first_retry_is_refused() -> None:
    # Given a lease as the stack used to set it (the function's timeout plus a minute)
    # When the settings are read
    # Then they refuse it, naming the retry it would outlive
    with pytest.raises(SettingsError, match="first retry"):
        load_ingest_settings({"SIGNALS_BUCKET": "b", "CLAIM_LEASE_SECONDS": "960"})
