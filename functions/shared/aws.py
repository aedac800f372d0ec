"""AWS SDK clients with bounded waits: one botocore Config for every client the functions create.

botocore retries throttling, 5xx and connection errors itself (standard mode, up to
`max_attempts` tries in all, with backoff), so callers do not wrap single SDK calls in
retry loops of their own. A body cut off after the answer began (a download broken
midway) is not retried by botocore: that one stays with the caller.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from functions.shared.settings import AwsClientSettings, load_aws_client_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider


def client_config(settings: AwsClientSettings) -> Config:
    """Connect and read timeouts, and standard-mode retries bounded by max_attempts."""
    return Config(
        connect_timeout=settings.connect_timeout_seconds,
        read_timeout=settings.read_timeout_seconds,
        retries={"mode": "standard", "total_max_attempts": settings.max_attempts},  # the first try included
    )


def aws_client(service_name: str, settings: AwsClientSettings | None = None) -> Any:
    """A boto3 client for `service_name` with the bounded Config (settings from the environment by default)."""
    return boto3.client(service_name, config=client_config(settings or load_aws_client_settings()))  # type: ignore[call-overload]


@cache
def secrets_provider() -> SecretsProvider:
    """Powertools' Secrets Manager provider on a bounded client; one per container, so its cache lives."""
    # Imported here so that local runs and tests never need Secrets Manager.
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider(boto3_client=aws_client("secretsmanager"))
