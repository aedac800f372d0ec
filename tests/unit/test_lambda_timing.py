"""The scaled timings tests run on keep every relation the deployment has."""

from __future__ import annotations

import pytest

from functions.shared.contract import CLAIM_LEASE_SECONDS, HEARTBEATS_PER_LEASE, LAMBDA_FIRST_RETRY_SECONDS
from functions.shared.settings import (
    DEFAULT_PUBLISH_LOCK_TIMEOUT_SECONDS,
    DEFAULT_TIME_BUDGET_MARGIN_SECONDS,
    DEFAULT_TRANSIENT_RETRIES,
    DEFAULT_TRANSIENT_WAIT_SECONDS,
    SettingsError,
    load_ingest_settings,
)
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


def held_lock_waits(lock_wait: float, transient_wait: float, retries: int) -> float:
    """How long a run waits on a held publish lock before failing as transient (functions/ingest/retry.py).

    The first wait ends in a failure; each later one is retried while the time since that first
    failure is within the transient wait, so floor(transient_wait / lock_wait) + 2 waits in all.
    """
    tries = min(retries + 1, int(transient_wait // lock_wait) + 2)
    return tries * lock_wait


def test_a_held_publish_lock_fails_a_run_before_its_timeout_deployed_and_scaled() -> None:
    # Given the publish lock's wait, the in-process retries and the function's timeout less the budget's margin
    deployed = held_lock_waits(DEFAULT_PUBLISH_LOCK_TIMEOUT_SECONDS, DEFAULT_TRANSIENT_WAIT_SECONDS, DEFAULT_TRANSIENT_RETRIES)
    scaled = held_lock_waits(
        lambda_timing.PUBLISH_LOCK_WAIT_SECONDS, lambda_timing.TRANSIENT_WAIT_SECONDS, lambda_timing.TRANSIENT_RETRIES
    )
    # When a run that reaches its publish at once meets a lock another date's publish holds
    # Then it fails as transient (for Lambda's retry) before Lambda's timeout, at both scales, the
    # same number of waits
    assert deployed < 900 - DEFAULT_TIME_BUDGET_MARGIN_SECONDS
    assert scaled < lambda_timing.FUNCTION_TIMEOUT_SECONDS - lambda_timing.TIME_BUDGET_MARGIN_SECONDS
    assert deployed / DEFAULT_PUBLISH_LOCK_TIMEOUT_SECONDS == scaled / lambda_timing.PUBLISH_LOCK_WAIT_SECONDS


def test_a_lease_that_lapses_in_time_only_without_its_last_beat_is_refused() -> None:
    # Given a lease shorter than the retry's spacing, but one that a holder killed just before a beat
    # keeps for a beat longer (50 s + 50/3 s > 60 s), and one that lapses in time even so
    too_long = int(LAMBDA_FIRST_RETRY_SECONDS * 0.85)
    fits = int(LAMBDA_FIRST_RETRY_SECONDS / (1 + 1 / HEARTBEATS_PER_LEASE)) - 1
    assert too_long < LAMBDA_FIRST_RETRY_SECONDS <= lapses_within(too_long) and lapses_within(fits) < LAMBDA_FIRST_RETRY_SECONDS
    # When the settings are read, Then the first is refused, naming the retry, and the second taken
    with pytest.raises(SettingsError, match="first retry"):
        load_ingest_settings({"SIGNALS_BUCKET": "b", "CLAIM_LEASE_SECONDS": str(too_long)})
    assert load_ingest_settings({"SIGNALS_BUCKET": "b", "CLAIM_LEASE_SECONDS": str(fits)}).lease_seconds == fits
