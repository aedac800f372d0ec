"""A sync that cannot finish before the function's timeout stops at a chunk boundary and the same event resumes it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pymysql
import pytest
from moto import mock_aws

from functions.ingest import handler as ingest
from functions.ingest.hooks import SyncHooks
from functions.ingest.repository import Repository
from functions.ingest.sync_values import SyncOptions
from functions.shared.errors import HandedOver
from functions.shared.settings import DatabaseSettings
from tests.factories import day_two, snowflake_table, write_pyarrow
from tests.integration.conftest import (
    DAY_ONE,
    DAY_TWO,
    day_one_published_and_day_two_uploaded,
    expected_rows,
    query,
    service_on,
    table_rows,
    upload_to,
    work_dir_for,
)
from tests.scripts_support import LocalContext

BUCKET = "signals-bucket"
KEY = "passive_upsell_signals/dt=2026-01-30/data.parquet"
CALIBRATION_KEY = "passive_upsell_signals/dt=2026-01-29/data.parquet"
FIRST_KEY = "passive_upsell_signals/dt=2026-01-28/data.parquet"
MARGIN_SECONDS = 1


@pytest.fixture
def s3(migrated_settings: DatabaseSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto S3 with the bucket, and the ingest configured for small chunks, a 1 s margin and no dead-letter queue."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        for name, value in {
            "SIGNALS_BUCKET": BUCKET,
            "WORK_DIR": str(tmp_path),
            "STAGING_CHUNK_ROWS": "2000",
            "TIME_BUDGET_MARGIN_SECONDS": str(MARGIN_SECONDS),
        }.items():
            monkeypatch.setenv(name, value)
        ingest.build_app.cache_clear()
        yield client
        ingest.build_app.cache_clear()


def test_a_file_needing_several_runs_completes_exactly_through_lambdas_retries(
    s3: Any, db: pymysql.Connection[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a 120,000-row day two (staged, not loaded in one go: the first-load rate is set too low)
    # in which every row differs from the table (the day before stamps the model's run time on
    # each, the file does not), so every row is staged, by INSERT, in small chunks
    monkeypatch.setenv("FIRST_LOAD_ROWS_PER_SECOND", "1000")
    monkeypatch.setenv("STAGING_LOAD_METHOD", "insert")
    monkeypatch.setenv("STAGING_CHUNK_ROWS", "500")
    first_table = snowflake_table(120_000, seed=399)
    calibration_table = day_two(first_table, seed=400, model_run_everywhere=True)
    file_table = day_two(first_table, seed=401)
    for table, key in ((first_table, FIRST_KEY), (calibration_table, CALIBRATION_KEY), (file_table, KEY)):
        s3.upload_file(str(write_pyarrow(table, tmp_path / f"{key.split('/')[1]}.parquet")), BUCKET, key)
    ingest.handler({"sync_date": "2026-01-28"}, LocalContext("ingest"))
    # And, measured here on the day before (itself such a day two), a whole sync and its publish:
    # the function's timeout is a third of the sync, or enough for the publish if that is more,
    # and the publish rate the time budget plans with is the one measured
    caplog.clear()
    with caplog.at_level("INFO", logger="upsell_signals"):
        started = time.monotonic()
        ingest.handler({"sync_date": "2026-01-29"}, LocalContext("ingest"))
        whole_sync_seconds = time.monotonic() - started
    staged_at = next(record.created for record in caplog.records if record.getMessage().startswith("staged "))
    published_at = next(record.created for record in caplog.records if record.getMessage() == "published")
    publish_seconds = published_at - staged_at
    timeout_seconds = MARGIN_SECONDS + max(whole_sync_seconds / 3, 1.5 * publish_seconds)
    monkeypatch.setenv("PUBLISH_ROWS_PER_SECOND", str(int(calibration_table.num_rows / (1.25 * publish_seconds))))
    ingest.build_app.cache_clear()

    # When Lambda runs the event, and runs it again (same request id) each time it hands over
    invocations: list[tuple[float, str]] = []
    answer: dict[str, Any] | None = None
    while answer is None and len(invocations) < 9:
        context = LocalContext("ingest", timeout_seconds=timeout_seconds, aws_request_id="the-one-request")
        started = time.monotonic()
        try:
            answer = ingest.handler({"sync_date": "2026-01-30"}, context)
            invocations.append((time.monotonic() - started, "answered"))
        except HandedOver as handed:
            invocations.append((time.monotonic() - started, str(handed)))

    # Then every run stopped before its timeout, at least one handed over, and the last completed exactly
    assert answer is not None and answer["status"] == "completed", invocations
    assert all(seconds < timeout_seconds for seconds, _ in invocations), (timeout_seconds, invocations)
    print("RATIO", whole_sync_seconds, publish_seconds, invocations)
    assert 2 <= len(invocations) <= 8, (whole_sync_seconds, publish_seconds, invocations)
    assert answer["rows_processed"] == file_table.num_rows and answer["rows_resumed"] > 0
    assert table_rows(db) == {**expected_rows(first_table), **expected_rows(calibration_table), **expected_rows(file_table)}
    runs = query(db, "SELECT attempt, status FROM upsell_signal_sync_runs WHERE sync_date = '2026-01-30' ORDER BY id")
    assert [run["status"] for run in runs] == ["handed_over"] * (len(invocations) - 1) + ["completed"]
    assert [run["attempt"] for run in runs] == list(range(1, len(invocations) + 1))


def test_a_first_load_that_would_not_finish_in_the_time_left_is_staged_instead(
    s3: Any, db: pymysql.Connection[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given an empty table, a 5,000-row file, and a first-load rate that would need 50 s for it
    monkeypatch.setenv("FIRST_LOAD_ROWS_PER_SECOND", "100")
    file_table = snowflake_table(5_000, seed=402)
    s3.upload_file(str(write_pyarrow(file_table, tmp_path / "day.parquet")), BUCKET, KEY)
    context = LocalContext("ingest", timeout_seconds=40)

    # When it syncs with 40 s to go
    with caplog.at_level("INFO", logger="upsell_signals"):
        answer = ingest.handler({"sync_date": "2026-01-30"}, context)

    # Then it stages (so that it could stop at a chunk and resume) rather than load in one transaction
    assert answer["status"] == "completed" and answer["rows_inserted"] == 5_000
    assert any("may not load in the time left: staging" in record.getMessage() for record in caplog.records)
    assert any(record.getMessage().startswith("staged 5000 rows") for record in caplog.records)
    assert table_rows(db) == expected_rows(file_table)


def test_a_run_that_starts_staging_already_short_of_time_still_commits_a_chunk_before_handing_over(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given a 2,000-row file in chunks of 500, and a run with 29 s left: inside the 30 s margin
    # before it stages a row
    table = snowflake_table(2_000, seed=77)
    upload_to(moto_endpoint, DAY_ONE, write_pyarrow(table, tmp_path / "day.parquet"))
    service = service_on(moto_endpoint, migrated_settings, work_dir_for(tmp_path, "short"), STAGING_CHUNK_ROWS="500")

    # When it syncs, it hands over
    with pytest.raises(HandedOver):
        service.sync(DAY_ONE, None, SyncOptions(invocation_id="short", seconds_left=lambda: 29.0, run_seconds=900.0))

    # Then only after committing one chunk: a hand-over always leaves the next run less to do
    [progress] = query(db, "SELECT rows_read, chunks_committed FROM upsell_signal_staging_progress")
    assert (progress["rows_read"], progress["chunks_committed"]) == (500, 1)


def test_a_publish_retried_in_process_after_a_lost_connection_hands_over_when_it_no_longer_fits(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given day one published and day two uploaded, whose publish of its changed rows needs about
    # 36 s at 10 rows/s
    day_one_table, day_two_table = day_one_published_and_day_two_uploaded(
        moto_endpoint, migrated_settings, tmp_path, 3_000, seed=901
    )
    clock = {"left": 900.0}
    publishes: list[float] = []

    def lose_the_connection_late(repository: Repository) -> None:
        # The publish is about to start with plenty of time; the server restarts (its connection
        # is killed), and by the time it is back only 5 s of the run are left
        publishes.append(clock["left"])
        if len(publishes) == 1:
            db.cursor().execute(f"KILL {repository.connection.thread_id()}")
            clock["left"] = 5.0

    service = service_on(
        moto_endpoint,
        migrated_settings,
        tmp_path,
        hooks=SyncHooks(before_publish=lose_the_connection_late),
        PUBLISH_ROWS_PER_SECOND="10",
        TIME_BUDGET_MARGIN_SECONDS="1",
    )

    # When the sync runs: its first publish loses its connection, and the in-process retry finds
    # the staging complete with 5 s left
    with pytest.raises(HandedOver, match=r"publishing \d+ staged rows needs about") as handed:
        service.sync(DAY_TWO, None, SyncOptions(invocation_id="late", seconds_left=lambda: clock["left"], run_seconds=900.0))

    # Then the retry hands over instead of starting a publish Lambda would kill mid-transaction,
    # and the next run, a fresh one, publishes the staging as it is
    assert publishes == [900.0], (publishes, handed.value)
    clock["left"] = 900.0
    assert service.sync(DAY_TWO, None, SyncOptions(invocation_id="next", seconds_left=lambda: 900.0)).status == "completed"
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(day_two_table)}
