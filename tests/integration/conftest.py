"""Fixtures for the ingest: moto S3, uploads, a service wired to the test database."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pymysql
import pytest
from moto import mock_aws

from functions.ingest.columns import COLUMN_NAMES, KEY_COLUMN
from functions.ingest.hooks import SyncHooks
from functions.ingest.s3_source import SignalObjectStore
from functions.ingest.service import SyncService
from functions.ingest.sync_values import SyncAnswer, SyncOptions
from functions.migrate.files import discover_migrations
from functions.migrate.migrator import Migrator
from functions.shared.contract import object_key_for
from functions.shared.db import connect
from functions.shared.settings import DatabaseSettings, load_ingest_settings
from tests.factories import day_two, snowflake_table, write_pyarrow
from tests.integration.dedicated_server import DedicatedServer
from tests.lambda_timing import LEASE_SECONDS
from tests.stand_ins import moto_server

BUCKET = "signals-test-bucket"
PREFIX = "passive_upsell_signals/"
REPO_ROOT = Path(__file__).resolve().parents[2]
DAY_ONE = dt.date(2026, 1, 30)
DAY_TWO = dt.date(2026, 1, 31)


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
def run_sync(make_service: Callable[..., SyncService]) -> Callable[..., SyncAnswer]:
    def run(sync_date: dt.date, *, env: dict[str, str] | None = None, **options: Any) -> SyncAnswer:
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


# -- real faults: other processes, other connections -----------------------------


@pytest.fixture
def moto_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto S3 server on loopback, reachable from other processes, with the bucket made."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with moto_server() as endpoint:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint


def work_dir_for(tmp_path: Path, invocation: str) -> Path:
    """A work dir of the invocation's own, as each Lambda execution environment has its own /tmp."""
    work_dir = tmp_path / invocation
    work_dir.mkdir()
    return work_dir


def service_on(
    endpoint: str,
    settings: DatabaseSettings,
    work_dir: Path,
    *,
    sleep: Callable[[float], None] | None = None,
    hooks: SyncHooks | None = None,
    **env: str,
) -> SyncService:
    """A sync service on the test database and moto; its in-process retries do not wait unless given `sleep`.

    `hooks` pause or break it at a named moment (a slow process, a killed connection).
    """
    return SyncService(
        load_ingest_settings(ingest_env(WORK_DIR=str(work_dir), **env)),
        lambda: connect(settings, local_infile=True),
        SignalObjectStore(boto3.client("s3", endpoint_url=endpoint), BUCKET),
        sleep=sleep or (lambda _seconds: None),
        hooks=hooks,
    )


def upload_to(endpoint: str, sync_date: dt.date, path: Path) -> None:
    boto3.client("s3", endpoint_url=endpoint).upload_file(str(path), BUCKET, object_key_for(PREFIX, sync_date))


Outcome = SyncAnswer | BaseException


def in_a_thread(outcomes: dict[str, Outcome], name: str, run: Callable[[], SyncAnswer]) -> threading.Thread:
    """Start `run` on a thread named `name`; its result (or what it raised) lands in outcomes[name]."""

    def target() -> None:
        try:
            outcomes[name] = run()
        except BaseException as error:  # handed to the test's assertions
            outcomes[name] = error

    thread = threading.Thread(target=target, name=name)
    thread.start()
    return thread


def result_of(outcomes: dict[str, Outcome], name: str) -> SyncAnswer:
    """The sync result in outcomes[name]; what the thread raised instead fails the test, chained."""
    outcome = outcomes[name]
    if isinstance(outcome, BaseException):
        raise AssertionError(f"{name} raised {outcome!r}") from outcome
    return outcome


def wait_for(condition: Callable[[], bool], timeout_seconds: float, what: str) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def invoke_in_a_process(
    endpoint: str,
    settings: DatabaseSettings,
    work_dir: Path,
    sync_date: dt.date,
    *,
    request_id: str | None = None,
    stdout: int = subprocess.DEVNULL,
    **env: str,
) -> subprocess.Popen[bytes]:
    """`scripts/invoke ingest` for a date in its own process (chunks of 1,000 rows, the deployed lease scaled), to be killed."""
    environment = dict(
        os.environ,
        SIGNALS_BUCKET=BUCKET,
        AWS_ENDPOINT_URL_S3=endpoint,
        STAGING_CHUNK_ROWS="1000",
        CLAIM_LEASE_SECONDS=str(LEASE_SECONDS),
        WORK_DIR=str(work_dir),
        DB_NAME=settings.name,
    )
    environment.update(env)
    worker = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "scripts" / "invoke"), *(["--request-id", request_id] if request_id else []), "ingest", "-"],
        stdin=subprocess.PIPE,
        stdout=stdout,
        stderr=subprocess.DEVNULL,
        env=environment,
    )
    assert worker.stdin is not None
    worker.stdin.write(json.dumps({"sync_date": sync_date.isoformat()}).encode())
    worker.stdin.close()
    return worker


def uncommitted_table_rows(settings: DatabaseSettings) -> int:
    """Rows in the signals table including those of transactions not yet committed."""
    peeker = connect(settings)
    try:
        peeker.cursor().execute("SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED")
        return int(query(peeker, "SELECT COUNT(*) AS n FROM company_upsell_signals")[0]["n"])
    finally:
        peeker.close()


PUBLISH_LOCK_HOLDER = "SELECT IS_USED_LOCK('company_upsell_signals_publish') AS holder"


def chunks_committed(db: pymysql.Connection[Any], sync_date: dt.date) -> int:
    rows = query(db, "SELECT chunks_committed FROM upsell_signal_staging_progress WHERE sync_date = %s", (sync_date,))
    return int(rows[0]["chunks_committed"]) if rows else 0


def messages(caplog: pytest.LogCaptureFixture, containing: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if containing in record.getMessage()]


def day_one_published_and_day_two_uploaded(
    endpoint: str, settings: DatabaseSettings, work_dir: Path, rows: int, seed: int, **day_two_shape: Any
) -> tuple[pa.Table, pa.Table]:
    """Sync a day-one file of `rows` rows, then upload its day two (10% changed, 1% new, 1% gone; or `day_two_shape`)."""
    day_one_table = snowflake_table(rows, seed=seed)
    upload_to(endpoint, DAY_ONE, write_pyarrow(day_one_table, work_dir / "one.parquet"))
    service_on(endpoint, settings, work_dir).sync(DAY_ONE, None, SyncOptions(invocation_id="day-one"))
    day_two_table = day_two(day_one_table, seed=seed + 1, **day_two_shape)
    upload_to(endpoint, DAY_TWO, write_pyarrow(day_two_table, work_dir / "two.parquet"))
    return day_one_table, day_two_table


@pytest.fixture
def dedicated_server(server_settings: DatabaseSettings) -> Iterator[tuple[DedicatedServer, DatabaseSettings]]:
    """A MariaDB server for one test (not the session's), started, with a migrated database."""
    base = Path(tempfile.mkdtemp(prefix="kill-mariadb-"))  # short: the socket path has a length limit
    server = DedicatedServer(base)
    try:
        server.start()
        settings = replace(server_settings, host="127.0.0.1", port=server.port, user="root", password="", name="upsell_signals")
        admin = connect(settings, database="")
        try:
            admin.cursor().execute("CREATE DATABASE upsell_signals CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        finally:
            admin.close()
        migrator = connect(settings)
        try:
            Migrator(migrator, discover_migrations()).up()
        finally:
            migrator.close()
        yield server, settings
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
