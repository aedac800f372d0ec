"""Bounded waits are settings: defaults from measurement, validated, applied to every AWS client."""

from __future__ import annotations

import pytest

from functions.shared.aws import aws_client
from functions.shared.settings import (
    DEFAULT_DB_READ_TIMEOUT_SECONDS,
    AwsClientSettings,
    SettingsError,
    load_aws_client_settings,
    load_database_settings,
)


def test_database_timeouts_default_to_the_measured_bounds() -> None:
    settings = load_database_settings({"DB_HOST": "127.0.0.1"})
    assert (settings.read_timeout_seconds, settings.write_timeout_seconds) == (DEFAULT_DB_READ_TIMEOUT_SECONDS, 120)
    assert settings.idle_timeout_seconds < settings.read_timeout_seconds


def test_a_read_timeout_not_above_the_lock_wait_is_refused_by_name() -> None:
    # Given a read timeout that a healthy statement waiting for a row lock would outlast
    env = {"DB_HOST": "127.0.0.1", "DB_IDLE_TIMEOUT_SECONDS": "120", "DB_READ_TIMEOUT_SECONDS": "120"}
    # Then the settings are refused, naming both
    with pytest.raises(SettingsError, match=r"DB_READ_TIMEOUT_SECONDS \(120\) must exceed DB_IDLE_TIMEOUT_SECONDS"):
        load_database_settings(env)


def test_a_malformed_aws_setting_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match="AWS_MAX_ATTEMPTS must be at least 1"):
        load_aws_client_settings({"AWS_MAX_ATTEMPTS": "0"})


def test_every_aws_client_retries_in_standard_mode_with_bounded_attempts_and_timeouts() -> None:
    # Given the settings of the environment
    settings = load_aws_client_settings({"AWS_READ_TIMEOUT_SECONDS": "20", "AWS_MAX_ATTEMPTS": "4"})
    assert settings == AwsClientSettings(connect_timeout_seconds=5, read_timeout_seconds=20, max_attempts=4)

    # When a client is made for S3 (as the ingest's is)
    config = aws_client("s3", settings).meta.config

    # Then botocore retries throttling and 5xx itself, a bounded number of times, and no wait is unbounded
    assert config.retries == {"mode": "standard", "total_max_attempts": 4}
    assert (config.connect_timeout, config.read_timeout) == (5, 20)
