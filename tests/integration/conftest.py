"""Fixtures for the ingest: moto S3, uploads, a service wired to the test database."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pymysql
import pytest
from moto import mock_aws

from functions.ingest.columns import COLUMN_NAMES, KEY_COLUMN
from functions.ingest.s3_source import SignalObjectStore
from functions.ingest.service import SyncOptions, SyncResult, SyncService, object_key_for
from functions.shared.db import connect
from functions.shared.settings import DatabaseSettings, load_ingest_settings
from tests.factories import write_pyarrow

BUCKET = "signals-test-bucket"
PREFIX = "passive_upsell_signals/"


@pytest.fixture
def s3_client() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        yield client


@pytest.fixture
def upload(s3_client: Any, tmp_path: Path) -> Callable[..., str]:
    """Put a table (written by `writer`) or a file's bytes at the date's key; returns the key."""

    def put(
        sync_date: dt.date,
        table: pa.Table | None = None,
        *,
        writer: Callable[..., Path] = write_pyarrow,
        raw: bytes | None = None,
    ) -> str:
        key = object_key_for(PREFIX, sync_date)
        if raw is None:
            assert table is not None
            raw = writer(table, tmp_path / f"{uuid.uuid4().hex}.parquet").read_bytes()
        s3_client.put_object(Bucket=BUCKET, Key=key, Body=raw)
        return key

    return put


def ingest_env(**overrides: str) -> dict[str, str]:
    env = {"SIGNALS_BUCKET": BUCKET, "STAGING_CHUNK_ROWS": "1000", "TRANSIENT_RETRIES": "2"}
    env.update(overrides)
    return env


@pytest.fixture
def make_service(migrated_settings: DatabaseSettings, s3_client: Any, tmp_path: Path) -> Callable[..., SyncService]:
    """A SyncService on the test database and moto S3; settings overridable by env name."""

    def build(**env_overrides: str) -> SyncService:
        settings = load_ingest_settings(ingest_env(WORK_DIR=str(tmp_path), **env_overrides))
        return SyncService(
            settings,
            lambda: connect(migrated_settings, local_infile=True),
            SignalObjectStore(s3_client, BUCKET),
            sleep=lambda _seconds: None,
        )

    return build


@pytest.fixture
def run_sync(make_service: Callable[..., SyncService]) -> Callable[..., SyncResult]:
    def run(sync_date: dt.date, *, env: dict[str, str] | None = None, **options: Any) -> SyncResult:
        service = make_service(**(env or {}))
        return service.sync(sync_date, None, SyncOptions(invocation_id=f"test-{uuid.uuid4()}", **options))

    return run


def expected_rows(table: pa.Table) -> dict[str, dict[str, Any]]:
    """What the table must hold for a file, computed independently of the ingest's code:
    UTC naive datetimes cut to the second, whole numbers as int, rates at 4 decimals, booleans as 0/1."""
    expected = {}
    for record in table.to_pylist():
        row: dict[str, Any] = {}
        for name, value in record.items():
            column = {"company_id": "legacy_company_id"}.get(name.lower(), name.lower())
            if column not in COLUMN_NAMES:
                continue
            if isinstance(value, dt.datetime):
                if value.tzinfo is not None:
                    value = value.astimezone(dt.UTC).replace(tzinfo=None)
                value = value.replace(microsecond=0)
            elif isinstance(value, bool) or (isinstance(value, decimal.Decimal) and column != "ee_growth_rate"):
                value = int(value)
            elif column == "ee_growth_rate" and value is not None:
                value = decimal.Decimal(str(value)).quantize(decimal.Decimal("0.0001"), rounding=decimal.ROUND_HALF_UP)
            row[column] = value
        expected[row[KEY_COLUMN]] = row
    return expected


def table_rows(connection: pymysql.Connection[Any]) -> dict[str, dict[str, Any]]:
    """company_upsell_signals as {company id: {column: value}} (data columns only)."""
    with connection.cursor(pymysql.cursors.DictCursor) as cursor:
        cursor.execute(f"SELECT {', '.join(COLUMN_NAMES)} FROM company_upsell_signals")
        return {row[KEY_COLUMN]: dict(row) for row in cursor.fetchall()}


def query(connection: pymysql.Connection[Any], sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with connection.cursor(pymysql.cursors.DictCursor) as cursor:
        cursor.execute(sql, params)
        return [dict(row) for row in cursor.fetchall()]
