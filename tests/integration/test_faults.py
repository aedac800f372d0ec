"""Real faults: a killed process, a killed connection, a second invocation at once, a reader during publish."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pymysql
import pytest

from functions.ingest.s3_source import SignalObjectStore
from functions.ingest.service import SyncOptions, SyncResult, SyncService, object_key_for
from functions.shared.db import connect
from functions.shared.settings import DatabaseSettings, load_ingest_settings
from tests.factories import day_two, snowflake_table, write_pyarrow
from tests.integration.conftest import BUCKET, PREFIX, expected_rows, ingest_env, query, table_rows
from tests.stand_ins import moto_server

REPO_ROOT = Path(__file__).resolve().parents[2]
DAY_ONE = dt.date(2026, 1, 30)
DAY_TWO = dt.date(2026, 1, 31)


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


def service_on(endpoint: str, settings: DatabaseSettings, work_dir: Path, **env: str) -> SyncService:
    return SyncService(
        load_ingest_settings(ingest_env(WORK_DIR=str(work_dir), **env)),
        lambda: connect(settings, local_infile=True),
        SignalObjectStore(boto3.client("s3", endpoint_url=endpoint), BUCKET),
        sleep=lambda _seconds: None,
    )


def upload_to(endpoint: str, sync_date: dt.date, path: Path) -> None:
    boto3.client("s3", endpoint_url=endpoint).upload_file(str(path), BUCKET, object_key_for(PREFIX, sync_date))


def wait_for(condition: Callable[[], bool], timeout_seconds: float, what: str) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def test_an_attempt_killed_mid_staging_is_resumed_without_restaging(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given a 100,000-row file staged in chunks of 1,000 by a separate process
    file_table = snowflake_table(100_000, seed=91)
    upload_to(moto_endpoint, DAY_ONE, write_pyarrow(file_table, tmp_path / "day.parquet"))
    environment = dict(
        os.environ,
        SIGNALS_BUCKET=BUCKET,
        AWS_ENDPOINT_URL_S3=moto_endpoint,
        STAGING_CHUNK_ROWS="1000",
        CLAIM_LEASE_SECONDS="2",
        WORK_DIR=str(tmp_path),
        DB_NAME=migrated_settings.name,
    )
    worker = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "scripts" / "invoke"), "ingest", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment,
    )
    assert worker.stdin is not None
    worker.stdin.write(json.dumps({"sync_date": DAY_ONE.isoformat()}).encode())
    worker.stdin.close()

    # When the process is killed (SIGKILL) once a few chunks are committed
    def chunks_committed() -> int:
        rows = query(db, "SELECT chunks_committed FROM upsell_signal_staging_progress")
        return int(rows[0]["chunks_committed"]) if rows else 0

    wait_for(lambda: chunks_committed() >= 3, 60, "three committed chunks")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    committed_rows = int(query(db, "SELECT rows_read FROM upsell_signal_staging_progress")[0]["rows_read"])
    assert query(db, "SELECT status FROM upsell_signal_sync_metadata") == [{"status": "started"}]
    assert 0 < committed_rows < 100_000

    # Then, once its lease has run out, the next attempt takes over and resumes
    time.sleep(2.5)
    result = service_on(moto_endpoint, migrated_settings, tmp_path).sync(DAY_ONE, None, SyncOptions(invocation_id="retry"))

    assert (result.status, result.attempt, result.rows_resumed) == ("completed", 2, committed_rows)
    assert (result.rows_processed, result.rows_inserted) == (100_000, 100_000)
    assert table_rows(db) == expected_rows(file_table)


def test_a_connection_killed_mid_load_is_retried_and_completes_exactly(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    file_table = snowflake_table(60_000, seed=92)
    upload_to(moto_endpoint, DAY_ONE, write_pyarrow(file_table, tmp_path / "day.parquet"))
    killed: list[int] = []

    def kill_a_loading_connection() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            rows = query(
                db,
                "SELECT id FROM information_schema.processlist WHERE info LIKE 'LOAD DATA%%' AND db = %s",
                (migrated_settings.name,),
            )
            progress = query(db, "SELECT chunks_committed FROM upsell_signal_staging_progress")
            if rows and progress and progress[0]["chunks_committed"] >= 2:
                db.cursor().execute("KILL CONNECTION %s", (rows[0]["id"],))
                killed.append(int(rows[0]["id"]))
            time.sleep(0.001)

    killer = threading.Thread(target=kill_a_loading_connection)
    killer.start()
    result = service_on(moto_endpoint, migrated_settings, tmp_path, STAGING_CHUNK_ROWS="500").sync(
        DAY_ONE, None, SyncOptions(invocation_id="victim")
    )
    killer.join()

    assert killed, "the killer never found a LOAD DATA to kill"
    assert result.status == "completed" and result.attempt == 1 and (result.rows_resumed or 0) >= 1_000
    assert table_rows(db) == expected_rows(file_table)
    runs = query(db, "SELECT status FROM upsell_signal_sync_runs")
    assert runs == [{"status": "completed"}]


def test_two_invocations_at_once_one_publishes_the_other_is_in_progress(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    file_table = snowflake_table(30_000, seed=93)
    upload_to(moto_endpoint, DAY_ONE, write_pyarrow(file_table, tmp_path / "day.parquet"))
    start_together = threading.Barrier(2)
    results: dict[str, SyncResult] = {}

    def invoke(invocation_id: str) -> None:
        service = service_on(moto_endpoint, migrated_settings, tmp_path / invocation_id)
        (tmp_path / invocation_id).mkdir()
        start_together.wait()
        results[invocation_id] = service.sync(DAY_ONE, None, SyncOptions(invocation_id=invocation_id))

    threads = [threading.Thread(target=invoke, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    statuses = sorted(result.status for result in results.values())
    assert statuses == ["completed", "in_progress"]
    winner = next(name for name, result in results.items() if result.status == "completed")
    loser = next(name for name, result in results.items() if result.status == "in_progress")
    assert "holds the date" in (results[loser].reason or "")
    assert query(db, "SELECT workflow_id, attempt, status FROM upsell_signal_sync_metadata") == [
        {"workflow_id": winner, "attempt": 1, "status": "completed"}
    ]
    assert table_rows(db) == expected_rows(file_table)


def test_a_reader_polling_during_publish_never_sees_half_a_day(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    day_one_table = snowflake_table(40_000, seed=94)
    upload_to(moto_endpoint, DAY_ONE, write_pyarrow(day_one_table, tmp_path / "one.parquet"))
    upload_to(moto_endpoint, DAY_TWO, write_pyarrow(day_two(day_one_table, seed=95), tmp_path / "two.parquet"))
    service = service_on(moto_endpoint, migrated_settings, tmp_path)
    service.sync(DAY_ONE, None, SyncOptions(invocation_id="day-one"))
    fingerprint_sql = (
        "SELECT COUNT(*) AS row_count, SUM(most_recent_paid_ee_count) AS paid, "
        "SUM(CHAR_LENGTH(current_product_tier)) AS tiers FROM company_upsell_signals"
    )
    before = query(db, fingerprint_sql)[0]
    observations: list[dict[str, Any]] = []
    done = threading.Event()

    def poll() -> None:
        reader = connect(migrated_settings)
        reader.autocommit(True)
        while not done.is_set():
            observations.append(query(reader, fingerprint_sql)[0])
        reader.close()

    poller = threading.Thread(target=poll)
    poller.start()
    result = service.sync(DAY_TWO, None, SyncOptions(invocation_id=f"day-two-{uuid.uuid4()}"))
    time.sleep(0.05)
    done.set()
    poller.join()

    after = query(db, fingerprint_sql)[0]
    assert result.status == "completed" and before != after
    assert len(observations) > 20
    assert all(observation in (before, after) for observation in observations)
