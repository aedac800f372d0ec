"""Configuration, parsed once from the environment into typed, validated settings.

This module is the only reader of os.environ in the functions. In AWS the database
credentials come from Secrets Manager (DB_SECRET_ARN); locally from DB_HOST and friends.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from functions.shared.contract import (
    CLAIM_LEASE_SECONDS,
    HEARTBEATS_PER_LEASE,
    KEY_PREFIX,
    LAMBDA_FIRST_RETRY_SECONDS,
    continuation_runs,
)
from functions.shared.environment import Env

LoadMethod = Literal["local_infile", "insert"]
MissingRows = Literal["keep", "delete"]


# Sized from measurement (tests/integration/test_bounded_waits.py holds the bounds): the longest single statement is the
# publish's UPDATE of every row when each row changed, 10.3 s at 1M rows on a quiet 2-core
# machine and 33 s on a loaded one; at 10M rows, about 100 s and 330 s. A statement may first
# wait DB_IDLE_TIMEOUT_SECONDS (120) for a row lock. 600 s covers both with margin and stays
# under the function's 900 s timeout, so a dead connection fails as transient with time left.
DEFAULT_DB_READ_TIMEOUT_SECONDS = 600
# The server waits as long for our bytes (net_read_timeout = the idle timeout); so do we for its.
DEFAULT_DB_WRITE_TIMEOUT_SECONDS = 120
# A streak of transient faults is retried in-process this long (an RDS reboot or Multi-AZ
# failover: up to about two minutes), and at most this many times.
DEFAULT_TRANSIENT_WAIT_SECONDS = 150
DEFAULT_TRANSIENT_RETRIES = 20
# A publish waits this long for another date's publish to let the lock go, then fails as transient.
DEFAULT_PUBLISH_LOCK_TIMEOUT_SECONDS = 300
# Cautious: the bench's server publishes faster (docs/performance.md); cdk.json's
# ingest.publishRowsPerSecond may follow what the "published" log measures.
DEFAULT_PUBLISH_ROWS_PER_SECOND = 20_000
DEFAULT_NEWER_FILE_ROWS_PER_SECOND = 50_000
# The time budget stops a run this long before Lambda's timeout would.
DEFAULT_TIME_BUDGET_MARGIN_SECONDS = 30
MAX_LAMBDA_TIMEOUT_SECONDS = 900  # Lambda's ceiling for one invocation


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True, kw_only=True)
class DatabaseSettings:
    """Where the database is and how to reach it (credentials inline or by secret)."""

    host: str | None
    port: int
    user: str | None
    password: str | None  # never logged: excluded from repr below
    name: str
    secret_arn: str | None
    tls_ca_file: str | None
    connect_timeout_seconds: int
    idle_timeout_seconds: int = 120  # the server ends a session silent this long; keep it under the claim's lease
    # How long the client waits for one answer, or to hand over bytes, before it gives the
    # connection up as dead (a half-open socket otherwise hangs until the function's timeout).
    read_timeout_seconds: int = DEFAULT_DB_READ_TIMEOUT_SECONDS
    write_timeout_seconds: int = DEFAULT_DB_WRITE_TIMEOUT_SECONDS

    def __repr__(self) -> str:
        where = f"host={self.host!r}, port={self.port}, name={self.name!r}, secret_arn={self.secret_arn!r}"
        return f"DatabaseSettings({where})"


@dataclass(frozen=True, kw_only=True)
class AwsClientSettings:
    """Bounds on every AWS SDK call: botocore retries throttling and 5xx (standard mode) up to max_attempts."""

    connect_timeout_seconds: int = 5
    read_timeout_seconds: int = 30
    max_attempts: int = 5


@dataclass(frozen=True, kw_only=True)
class GuardThresholds:
    """Kill-switch thresholds, as fractions (0.05 = 5%)."""

    max_reject_ratio: float = 0.05
    max_row_count_drift: float = 0.30
    max_delete_ratio: float = 0.10


@dataclass(frozen=True, kw_only=True)
class TimeBudgetSettings:
    """How close to the function's timeout a sync may run, and the rates that size its steps.

    The rates are conservative floors (the bench measures 60,000+ rows/s on a 2-core
    machine); they only decide whether a step can finish in the time left.
    """

    margin_seconds: int = DEFAULT_TIME_BUDGET_MARGIN_SECONDS
    first_load_rows_per_second: int = 20_000
    publish_rows_per_second: int = DEFAULT_PUBLISH_ROWS_PER_SECOND
    # An older date's publish reads a newer date's file (newest_wins.py): read and validated in
    # 2.5-3.0 s a 1M-row file on the bench's 2-core machine, 10-11 s when its many changes send
    # every key to the server (the download besides).
    newer_file_rows_per_second: int = DEFAULT_NEWER_FILE_ROWS_PER_SECOND


@dataclass(frozen=True, kw_only=True)
class IngestSettings:
    """Everything the ingest function needs besides the event."""

    bucket: str
    key_prefix: str
    chunk_rows: int
    load_method: LoadMethod
    missing_rows: MissingRows
    guards: GuardThresholds
    lease_seconds: int
    publish_lock_timeout_seconds: int
    work_dir: str
    transient_retries: int
    transient_wait_seconds: int
    reconcile_days: int  # recent dates the daily run checks against their objects
    dead_letter_queue_url: str | None
    time_budget: TimeBudgetSettings
    continuation_max_runs: int  # runs one durable execution may take for an event (functions/ingest/continuation.py)


def _text(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    value = env.get(name, "").strip()
    return value or default


def _integer(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as error:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from error
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _fraction(env: Mapping[str, str], name: str, default: float) -> float:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as error:
        raise SettingsError(f"{name} must be a number between 0 and 1, got {raw!r}") from error
    if not 0 <= value <= 1:
        raise SettingsError(f"{name} must be between 0 and 1, got {value}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = (_text(env, name) or default).lower()
    if value not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def load_database_settings(env: Mapping[str, str] | None = None) -> DatabaseSettings:
    """Database location: DB_SECRET_ARN in AWS, or DB_HOST/DB_PORT/DB_USER/DB_PASSWORD/DB_NAME."""
    env = os.environ if env is None else env
    secret_arn = _text(env, Env.DB_SECRET_ARN)
    host = _text(env, Env.DB_HOST)
    if not secret_arn and not host:
        raise SettingsError("set DB_SECRET_ARN (in AWS) or DB_HOST, DB_USER, DB_PASSWORD, DB_NAME (locally)")
    idle_timeout_seconds = _integer(env, Env.DB_IDLE_TIMEOUT_SECONDS, 120, minimum=1)
    read_timeout_seconds = _integer(env, Env.DB_READ_TIMEOUT_SECONDS, DEFAULT_DB_READ_TIMEOUT_SECONDS, minimum=1)
    # A healthy statement may first wait idle_timeout_seconds for a row lock (the session's
    # innodb_lock_wait_timeout), then run: the client must wait longer than that wait alone.
    if read_timeout_seconds <= idle_timeout_seconds:
        raise SettingsError(
            f"DB_READ_TIMEOUT_SECONDS ({read_timeout_seconds}) must exceed DB_IDLE_TIMEOUT_SECONDS "
            f"({idle_timeout_seconds}): a statement may wait that long for a row lock before it runs"
        )
    return DatabaseSettings(
        host=host,
        port=_integer(env, Env.DB_PORT, 3306, minimum=1),
        user=_text(env, Env.DB_USER),
        password=env.get(Env.DB_PASSWORD),
        name=_text(env, Env.DB_NAME, "upsell_signals") or "upsell_signals",
        secret_arn=secret_arn,
        tls_ca_file=_text(env, Env.DB_TLS_CA_FILE),
        connect_timeout_seconds=_integer(env, Env.DB_CONNECT_TIMEOUT_SECONDS, 10, minimum=1),
        idle_timeout_seconds=idle_timeout_seconds,
        read_timeout_seconds=read_timeout_seconds,
        write_timeout_seconds=_integer(env, Env.DB_WRITE_TIMEOUT_SECONDS, DEFAULT_DB_WRITE_TIMEOUT_SECONDS, minimum=1),
    )


def load_aws_client_settings(env: Mapping[str, str] | None = None) -> AwsClientSettings:
    """AWS_CONNECT_TIMEOUT_SECONDS, AWS_READ_TIMEOUT_SECONDS, AWS_MAX_ATTEMPTS (botocore's, first try included)."""
    env = os.environ if env is None else env
    return AwsClientSettings(
        connect_timeout_seconds=_integer(env, Env.AWS_CONNECT_TIMEOUT_SECONDS, 5, minimum=1),
        read_timeout_seconds=_integer(env, Env.AWS_READ_TIMEOUT_SECONDS, 30, minimum=1),
        max_attempts=_integer(env, Env.AWS_MAX_ATTEMPTS, 5, minimum=1),
    )


@dataclass(frozen=True, kw_only=True)
class MigrateSettings:
    """What the migrate function needs besides the database: the secrets of the accounts it provisions, the ingest's rights."""

    ingest_user_secret_arn: str | None
    ingest_deletes: bool  # the ingest's MISSING_ROWS is delete: its account may delete signals rows
    status_user_secret_arn: str | None


def load_migrate_settings(env: Mapping[str, str] | None = None) -> MigrateSettings:
    """INGEST_DB_SECRET_ARN, STATUS_DB_SECRET_ARN: the secrets whose passwords those accounts get; MISSING_ROWS: the ingest's."""
    env = os.environ if env is None else env
    return MigrateSettings(
        ingest_user_secret_arn=_text(env, Env.INGEST_DB_SECRET_ARN),
        ingest_deletes=_choice(env, Env.MISSING_ROWS, "keep", ("keep", "delete")) == "delete",
        status_user_secret_arn=_text(env, Env.STATUS_DB_SECRET_ARN),
    )


def load_ingest_settings(env: Mapping[str, str] | None = None) -> IngestSettings:
    """Ingest behaviour: bucket, staging chunk size and method, guards, lease."""
    env = os.environ if env is None else env
    bucket = _text(env, Env.SIGNALS_BUCKET)
    if not bucket:
        raise SettingsError("SIGNALS_BUCKET is not set: the bucket that receives the daily Parquet files")
    return IngestSettings(
        bucket=bucket,
        key_prefix=_text(env, Env.SIGNALS_KEY_PREFIX, KEY_PREFIX) or KEY_PREFIX,
        chunk_rows=_integer(env, Env.STAGING_CHUNK_ROWS, 25_000, minimum=1),
        load_method=_choice(env, Env.STAGING_LOAD_METHOD, "local_infile", ("local_infile", "insert")),  # type: ignore[arg-type]
        missing_rows=_choice(env, Env.MISSING_ROWS, "keep", ("keep", "delete")),  # type: ignore[arg-type]
        guards=GuardThresholds(
            max_reject_ratio=_fraction(env, Env.GUARD_MAX_REJECT_RATIO, 0.05),
            max_row_count_drift=_fraction(env, Env.GUARD_MAX_ROW_COUNT_DRIFT, 0.30),
            max_delete_ratio=_fraction(env, Env.GUARD_MAX_DELETE_RATIO, 0.10),
        ),
        lease_seconds=_lease_seconds(env),
        publish_lock_timeout_seconds=_integer(
            env, Env.PUBLISH_LOCK_TIMEOUT_SECONDS, DEFAULT_PUBLISH_LOCK_TIMEOUT_SECONDS, minimum=1
        ),
        # Lambda's only writable place is /tmp (ephemeral storage); the file is downloaded there.
        work_dir=_text(env, Env.WORK_DIR) or "/tmp",  # noqa: S108
        transient_retries=_integer(env, Env.TRANSIENT_RETRIES, DEFAULT_TRANSIENT_RETRIES, minimum=0),
        transient_wait_seconds=_integer(env, Env.TRANSIENT_WAIT_SECONDS, DEFAULT_TRANSIENT_WAIT_SECONDS, minimum=0),
        reconcile_days=_integer(env, Env.RECONCILE_DAYS, 7, minimum=0),
        dead_letter_queue_url=_text(env, Env.DEAD_LETTER_QUEUE_URL),
        time_budget=TimeBudgetSettings(
            margin_seconds=_integer(env, Env.TIME_BUDGET_MARGIN_SECONDS, DEFAULT_TIME_BUDGET_MARGIN_SECONDS, minimum=1),
            first_load_rows_per_second=_integer(env, Env.FIRST_LOAD_ROWS_PER_SECOND, 20_000, minimum=1),
            publish_rows_per_second=_integer(env, Env.PUBLISH_ROWS_PER_SECOND, DEFAULT_PUBLISH_ROWS_PER_SECOND, minimum=1),
            newer_file_rows_per_second=_integer(
                env, Env.NEWER_FILE_ROWS_PER_SECOND, DEFAULT_NEWER_FILE_ROWS_PER_SECOND, minimum=1
            ),
        ),
        continuation_max_runs=_integer(
            env,
            Env.CONTINUATION_MAX_RUNS,
            continuation_runs(MAX_LAMBDA_TIMEOUT_SECONDS, DEFAULT_TIME_BUDGET_MARGIN_SECONDS),
            minimum=1,
        ),
    )


def _lease_seconds(env: Mapping[str, str]) -> int:
    """CLAIM_LEASE_SECONDS, refused when a killed holder's lease would outlive Lambda's first retry."""
    lease_seconds = _integer(env, Env.CLAIM_LEASE_SECONDS, CLAIM_LEASE_SECONDS, minimum=1)
    # The lease lapses at most one lease after the last beat, which came at most a beat before the kill.
    lapses_within = lease_seconds + lease_seconds / HEARTBEATS_PER_LEASE
    if lapses_within >= LAMBDA_FIRST_RETRY_SECONDS:
        raise SettingsError(
            f"CLAIM_LEASE_SECONDS ({lease_seconds}) must lapse before Lambda's first retry, {LAMBDA_FIRST_RETRY_SECONDS} s "
            f"after a failure: a killed holder's lease can last {lapses_within:.0f} s, and a retry that finds the date "
            "held answers in_progress and is never retried again"
        )
    return lease_seconds


def load_environment_name(env: Mapping[str, str] | None = None) -> str | None:
    """ENVIRONMENT_NAME (dev, staging, prod: set by the stack), the metrics' environment dimension; None locally."""
    env = os.environ if env is None else env
    return _text(env, Env.ENVIRONMENT_NAME)
