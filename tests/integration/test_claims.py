"""Who holds a date: the newest file wins, a twin never double-runs, a stalled holder blocks nobody."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pymysql
import pytest

from functions.ingest import claims
from functions.ingest.hooks import SyncHooks
from functions.ingest.repository import Repository
from functions.ingest.s3_source import SignalObjectStore
from functions.ingest.sync_values import DurableRun, SyncAnswer, SyncOptions
from functions.shared.contract import HEARTBEATS_PER_LEASE, object_key_for
from functions.shared.db import connect
from functions.shared.errors import ClaimLost, TransientError
from functions.shared.settings import DatabaseSettings
from functions.status.queries import StatusQueries
from tests.factories import day_two, snowflake_table, write_pyarrow
from tests.integration.conftest import (
    BUCKET,
    DAY_ONE,
    DAY_TWO,
    PREFIX,
    Outcome,
    chunks_committed,
    day_one_published_and_day_two_uploaded,
    expected_rows,
    in_a_thread,
    invoke_in_a_process,
    query,
    result_of,
    service_on,
    table_rows,
    upload_to,
    wait_for,
    work_dir_for,
)
from tests.lambda_timing import FIRST_RETRY_SECONDS, LEASE_SECONDS


def etag_now(endpoint: str, sync_date: Any) -> str:
    head = boto3.client("s3", endpoint_url=endpoint).head_object(Bucket=BUCKET, Key=object_key_for(PREFIX, sync_date))
    return str(head["ETag"]).strip('"')


def metadata(db: pymysql.Connection[Any], sync_date: Any) -> dict[str, Any]:
    rows = query(db, "SELECT * FROM upsell_signal_sync_metadata WHERE sync_date = %s", (sync_date,))
    assert len(rows) == 1
    return rows[0]


# -- the newest file wins ------------------------------------------------------------


def test_a_correction_landing_while_the_first_export_syncs_is_the_one_published(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given day one published, and day two's first export staging in chunks of 500 rows
    day_one_table, _first_export = day_one_published_and_day_two_uploaded(
        moto_endpoint, migrated_settings, tmp_path, 60_000, seed=201
    )
    outcomes: dict[str, Outcome] = {}
    first = service_on(moto_endpoint, migrated_settings, work_dir_for(tmp_path, "first"), STAGING_CHUNK_ROWS="500")
    thread = in_a_thread(outcomes, "first", lambda: first.sync(DAY_TWO, None, SyncOptions(invocation_id="first-export")))
    wait_for(lambda: chunks_committed(db, DAY_TWO) >= 2, 60, "two chunks of the first export")

    # When a corrected re-export lands and its own S3 event is handled meanwhile
    correction = day_two(day_one_table, seed=203)
    upload_to(moto_endpoint, DAY_TWO, write_pyarrow(correction, tmp_path / "correction.parquet"))
    assert etag_now(moto_endpoint, DAY_TWO) != metadata(db, DAY_TWO)["s3_etag"]
    corrected = service_on(moto_endpoint, migrated_settings, work_dir_for(tmp_path, "second")).sync(
        DAY_TWO, None, SyncOptions(invocation_id="correction")
    )
    thread.join(timeout=120)

    # Then the correction is published, exactly, and the first execution stood down for it
    superseded = result_of(outcomes, "first")
    assert corrected.status == "completed"
    assert superseded.status == "skipped" and "superseded" in (superseded.reason or "")
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(correction)}
    row = metadata(db, DAY_TWO)
    assert (row["status"], row["completed_etag"], row["attempt"]) == ("completed", etag_now(moto_endpoint, DAY_TWO), corrected.claim_number)


def test_a_correction_whose_event_is_lost_is_synced_by_the_run_it_replaced(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given day two's first export staging in chunks of 500 rows, its object downloaded
    day_one_table, first_export = day_one_published_and_day_two_uploaded(
        moto_endpoint, migrated_settings, tmp_path, 20_000, seed=207
    )
    outcomes: dict[str, Outcome] = {}
    first = service_on(moto_endpoint, migrated_settings, work_dir_for(tmp_path, "first"), STAGING_CHUNK_ROWS="500")
    thread = in_a_thread(outcomes, "first", lambda: first.sync(DAY_TWO, None, SyncOptions(invocation_id="first-export")))
    wait_for(lambda: chunks_committed(db, DAY_TWO) >= 2, 60, "two chunks of the first export")

    # When a corrected re-export lands and its event never comes (Lambda dropped it)
    correction = day_two(day_one_table, seed=209)
    upload_to(moto_endpoint, DAY_TWO, write_pyarrow(correction, tmp_path / "correction.parquet"))
    thread.join(timeout=120)

    # Then the run that synced the first export saw it replaced and synced the correction too
    # before answering: the table and the ledger end with the newest file
    result = result_of(outcomes, "first")
    assert (result.status, result.rows_processed) == ("completed", correction.num_rows), result
    # (keep mode: companies absent from the correction keep what the first export published)
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(first_export), **expected_rows(correction)}
    assert metadata(db, DAY_TWO)["completed_etag"] == etag_now(moto_endpoint, DAY_TWO)


def test_an_older_exports_late_event_taking_the_date_still_ends_with_the_correction_published(
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given day two's first export, whose event's run looked the object up and then stalled before
    # its claim (a slow cold start), while a corrected re-export landed and its own run began staging
    day_one_table, _first_export = day_one_published_and_day_two_uploaded(
        moto_endpoint, migrated_settings, tmp_path, 20_000, seed=204
    )
    described, claim_now = threading.Event(), threading.Event()
    claim_date = claims.claim_date

    def stalled_claim_date(*args: Any) -> Any:
        if threading.current_thread().name == "late" and not claim_now.is_set():
            described.set()
            claim_now.wait(timeout=60)
        return claim_date(*args)

    monkeypatch.setattr(claims, "claim_date", stalled_claim_date)
    outcomes: dict[str, Outcome] = {}
    late = service_on(moto_endpoint, migrated_settings, work_dir_for(tmp_path, "late"))
    late_thread = in_a_thread(outcomes, "late", lambda: late.sync(DAY_TWO, None, SyncOptions(invocation_id="late")))
    assert described.wait(timeout=60)
    correction = day_two(day_one_table, seed=206)
    upload_to(moto_endpoint, DAY_TWO, write_pyarrow(correction, tmp_path / "correction.parquet"))
    corrected = service_on(moto_endpoint, migrated_settings, work_dir_for(tmp_path, "correction"), STAGING_CHUNK_ROWS="500")
    correction_thread = in_a_thread(
        outcomes, "correction", lambda: corrected.sync(DAY_TWO, None, SyncOptions(invocation_id="correction"))
    )
    wait_for(lambda: chunks_committed(db, DAY_TWO) >= 2, 60, "two chunks of the correction")

    # When the stalled run claims with the older object it looked up, taking the date (another ETag)
    claim_now.set()
    late_thread.join(timeout=120)
    correction_thread.join(timeout=120)

    # Then the table still ends with the correction, exactly: the run that published the older
    # object saw it replaced and synced the newest too before answering
    assert result_of(outcomes, "late").status == "completed", result_of(outcomes, "late")
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(correction)}
    assert metadata(db, DAY_TWO)["completed_etag"] == etag_now(moto_endpoint, DAY_TWO)


def test_a_real_sync_arriving_during_a_dry_run_takes_the_date_and_publishes(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given an operator's dry run of day two, staging in chunks of 500 rows
    day_one_table, day_two_table = day_one_published_and_day_two_uploaded(
        moto_endpoint, migrated_settings, tmp_path, 60_000, seed=211
    )
    outcomes: dict[str, Outcome] = {}
    dry = service_on(moto_endpoint, migrated_settings, work_dir_for(tmp_path, "dry"), STAGING_CHUNK_ROWS="500")
    thread = in_a_thread(
        outcomes, "dry", lambda: dry.sync(DAY_TWO, None, SyncOptions(invocation_id="operator", dry_run=True))
    )
    wait_for(lambda: chunks_committed(db, DAY_TWO) >= 2, 60, "two chunks of the dry run")

    # When the file's own S3 event is handled meanwhile
    real = service_on(moto_endpoint, migrated_settings, work_dir_for(tmp_path, "real")).sync(
        DAY_TWO, None, SyncOptions(invocation_id="s3-event", trigger="s3")
    )
    thread.join(timeout=120)

    # Then the real sync publishes the day, and the dry run gave way without undoing it
    dry_result = result_of(outcomes, "dry")
    assert real.status == "completed"
    assert dry_result.status == "skipped" and "superseded" in (dry_result.reason or "")
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(day_two_table)}
    assert metadata(db, DAY_TWO)["status"] == "completed"


def test_a_real_sync_resuming_the_pass_a_dry_run_counted_keeps_it_through_the_dry_runs_clean_up(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given an operator's dry run of day two that has counted and let the date go, and is slow to
    # drop its staging (a slow connect, a paused process)
    day_one_table, day_two_table = day_one_published_and_day_two_uploaded(
        moto_endpoint, migrated_settings, tmp_path, 3_000, seed=911
    )
    cleaning, real_has_read_the_pass = threading.Event(), threading.Event()

    def slow_clean_up(_repository: Repository) -> None:
        cleaning.set()
        real_has_read_the_pass.wait(30)

    dry = service_on(moto_endpoint, migrated_settings, work_dir_for(tmp_path, "dry"), hooks=SyncHooks(before_clean_up=slow_clean_up))
    outcomes: dict[str, Outcome] = {}
    dry_thread = in_a_thread(outcomes, "dry", lambda: dry.sync(DAY_TWO, None, SyncOptions(invocation_id="dry", dry_run=True)))
    assert cleaning.wait(60), "the dry run never reached its clean-up"

    def let_the_dry_run_clean_up(_repository: Repository) -> None:
        real_has_read_the_pass.set()
        dry_thread.join(30)

    # When the file's own event comes meanwhile, resumes the dry run's complete pass, and the dry
    # run's clean-up runs before it publishes
    real = service_on(
        moto_endpoint, migrated_settings, work_dir_for(tmp_path, "real"), hooks=SyncHooks(before_publish=let_the_dry_run_clean_up)
    )
    answer = real.sync(DAY_TWO, None, SyncOptions(invocation_id="real", trigger="eventbridge_s3"))
    dry_thread.join(30)

    # Then the dry run answered as one, left the pass to the real sync, and day two is published exactly
    assert not dry_thread.is_alive() and result_of(outcomes, "dry").status == "dry_run"
    assert (answer.status, answer.rows_inserted + answer.rows_updated > 0) == ("completed", True), answer
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(day_two_table)}


def test_a_file_landing_while_the_fallback_fails_on_its_absence_is_synced(
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
) -> None:
    # Given the 06:00 fallback has claimed a date whose file is not there yet, and is slow
    # (a paused process) to record that failure
    boto3.client("s3", endpoint_url=moto_endpoint).delete_object(Bucket=BUCKET, Key=object_key_for(PREFIX, DAY_ONE))
    file_landed = threading.Event()

    def slow_to_record_the_failure(_held: Any) -> None:
        file_landed.wait(timeout=60)

    fallback = service_on(
        moto_endpoint,
        migrated_settings,
        work_dir_for(tmp_path, "fallback"),
        hooks=SyncHooks(before_recording_failure=slow_to_record_the_failure),
    )
    outcomes: dict[str, Outcome] = {}
    thread = in_a_thread(
        outcomes, "fallback", lambda: fallback.sync(DAY_ONE, None, SyncOptions(invocation_id="schedule", trigger="schedule"))
    )
    wait_for(lambda: query(db, "SELECT status FROM upsell_signal_sync_metadata") == [{"status": "started"}], 30, "the claim")

    # When the file lands and its S3 event is handled
    file_table = snowflake_table(5_000, seed=221)
    upload_to(moto_endpoint, DAY_ONE, write_pyarrow(file_table, tmp_path / "day.parquet"))
    arrived = service_on(moto_endpoint, migrated_settings, work_dir_for(tmp_path, "s3")).sync(
        DAY_ONE, None, SyncOptions(invocation_id="s3-event", trigger="s3")
    )
    file_landed.set()
    thread.join(timeout=60)

    # Then the file is published, and the fallback's failure neither overwrote that nor raised
    fallback_result = result_of(outcomes, "fallback")
    assert arrived.status == "completed"
    assert fallback_result.status == "skipped" and "no file at s3://" in (fallback_result.reason or "")
    assert table_rows(db) == expected_rows(file_table)
    assert metadata(db, DAY_ONE)["status"] == "completed"


# -- the holder is an execution, not a request id ---------------------------------------


def test_twins_with_one_request_id_at_once_run_once(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given one file, and two deliveries of the same invocation (Lambda reuses the request id)
    file_table = snowflake_table(30_000, seed=231)
    upload_to(moto_endpoint, DAY_ONE, write_pyarrow(file_table, tmp_path / "day.parquet"))
    start_together = threading.Barrier(2)
    outcomes: dict[str, Outcome] = {}

    def twin(name: str) -> Callable[[], SyncAnswer]:
        service = service_on(moto_endpoint, migrated_settings, work_dir_for(tmp_path, name))

        def run() -> SyncAnswer:
            start_together.wait()
            return service.sync(DAY_ONE, None, SyncOptions(invocation_id="one-request-id"))

        return run

    # When both run at once
    threads = [in_a_thread(outcomes, name, twin(name)) for name in ("a", "b")]
    for thread in threads:
        thread.join(timeout=120)

    # Then one syncs and the other answers in progress: no second staging, no failure
    statuses = sorted(result_of(outcomes, name).status for name in ("a", "b"))
    assert statuses == ["completed", "in_progress"]
    assert table_rows(db) == expected_rows(file_table)
    assert sorted(row["status"] for row in query(db, "SELECT status FROM upsell_signal_sync_runs")) == ["completed", "in_progress"]


def a_first_load_killed_in_its_load(
    endpoint: str, settings: DatabaseSettings, db: pymysql.Connection[Any], tmp_path: Path, *, seed: int
) -> pa.Table:
    """A 100,000-row first load of DAY_ONE under request id "req-1", killed (SIGKILL) in its LOAD DATA; its file."""
    file_table = snowflake_table(100_000, seed=seed)
    upload_to(endpoint, DAY_ONE, write_pyarrow(file_table, tmp_path / "day.parquet"))
    worker = invoke_in_a_process(endpoint, settings, tmp_path, DAY_ONE, request_id="req-1")
    wait_for(lambda: bool(query(db, "SELECT 1 FROM information_schema.processlist WHERE info LIKE 'LOAD DATA%%'")), 60, "the load")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    return file_table


def test_lambdas_retry_of_a_killed_first_load_with_the_same_request_id_stages_it(
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a first load killed (SIGKILL) midway, under request id "req-1"
    file_table = a_first_load_killed_in_its_load(moto_endpoint, migrated_settings, db, tmp_path, seed=232)

    # When Lambda's async retry runs it again, with the same request id, at Lambda's spacing (scaled)
    time.sleep(FIRST_RETRY_SECONDS)
    with caplog.at_level("INFO", logger="upsell_signals"):
        result = service_on(moto_endpoint, migrated_settings, tmp_path).sync(DAY_ONE, None, SyncOptions(invocation_id="req-1"))

    # Then it takes over as a new attempt and stages (so that it could itself resume), and the
    # killed run is closed in the history as taken over, not left `started` forever
    assert (result.status, result.claim_number, result.rows_inserted) == ("completed", 2, 100_000)
    assert any(record.getMessage().startswith("staged 100000 rows") for record in caplog.records)
    assert table_rows(db) == expected_rows(file_table)
    runs = query(db, "SELECT attempt, status, error_type, finished_at IS NOT NULL AS finished FROM upsell_signal_sync_runs ORDER BY id")
    assert runs == [
        {"attempt": 1, "status": "failed", "error_type": "TakenOver", "finished": 1},
        {"attempt": 2, "status": "completed", "error_type": None, "finished": 1},
    ]


def test_the_next_invocation_of_a_durable_execution_whose_first_load_was_killed_stages_it(
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a durable execution's first load killed (SIGKILL, as Lambda's timeout kills) midway
    file_table = a_first_load_killed_in_its_load(moto_endpoint, migrated_settings, db, tmp_path, seed=932)
    [held] = query(db, "SELECT holder_token, durable_execution_arn, status FROM upsell_signal_sync_metadata")
    assert held["status"] == "started" and held["durable_execution_arn"], held

    # When the execution's next invocation runs that step again (the execution's token: its own claim, resumed)
    run = DurableRun(holder_token=held["holder_token"], execution_arn=held["durable_execution_arn"], number=1)
    with caplog.at_level("INFO", logger="upsell_signals"):
        result = service_on(moto_endpoint, migrated_settings, tmp_path).sync(
            DAY_ONE, None, SyncOptions(invocation_id="req-1", durable_run=run)
        )

    # Then it stages, so that a second kill at the same timeout resumes from committed chunks,
    # instead of repeating the one-transaction load that was just killed
    assert (result.status, result.rows_inserted) == ("completed", 100_000)
    assert table_rows(db) == expected_rows(file_table)
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.startswith("staged 100000 rows") for message in messages), messages
    assert not [message for message in messages if "loading the file straight into it" in message], messages


# -- a stalled holder ---------------------------------------------------------------------


# A claim's session waits this long for a row lock (DB_IDLE_TIMEOUT_SECONDS sets both): a claim
# that waited on the holder's lock instead of reading past it would take that long to answer.
LONG_LOCK_WAIT_SECONDS = 60
ANSWERED_AT_ONCE_SECONDS = 2.0  # well within a lock wait, with room for a loaded test machine


def with_long_lock_waits(settings: DatabaseSettings) -> DatabaseSettings:
    long_waits = replace(settings, idle_timeout_seconds=LONG_LOCK_WAIT_SECONDS)
    session = connect(long_waits)
    try:
        assert query(session, "SELECT @@innodb_lock_wait_timeout AS wait") == [{"wait": LONG_LOCK_WAIT_SECONDS}]
    finally:
        session.close()
    return long_waits


def hold_the_metadata_row(settings: DatabaseSettings, sync_date: Any) -> pymysql.Connection[Any]:
    """A session that locks the date's metadata row in an open transaction, as a paused holder's chunk does."""
    holder = connect(settings)
    holder.begin()
    with holder.cursor() as cursor:
        cursor.execute("SELECT * FROM upsell_signal_sync_metadata WHERE sync_date = %s FOR UPDATE", (sync_date,))
    return holder


def started_by_someone_else(db: pymysql.Connection[Any], etag: str) -> None:
    db.cursor().execute(
        "INSERT INTO upsell_signal_sync_metadata (sync_date, s3_key, s3_etag, workflow_id, holder_token, status, "
        "trigger_source, attempt, lease_expires_at) VALUES (%s, %s, %s, 'holder', 'a-paused-holder', 'started', "
        "'s3', 1, NOW() + INTERVAL 600 SECOND)",
        (DAY_ONE, object_key_for(PREFIX, DAY_ONE), etag),
    )


def test_a_claim_behind_a_paused_holders_row_lock_answers_at_once(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given a live holder of the same object whose open transaction locks the date's row, and
    # sessions whose lock waits are long (so that a claim waiting on the lock would show)
    settings = with_long_lock_waits(migrated_settings)
    upload_to(moto_endpoint, DAY_ONE, write_pyarrow(snowflake_table(100, seed=241), tmp_path / "day.parquet"))
    started_by_someone_else(db, etag_now(moto_endpoint, DAY_ONE))
    holder = hold_the_metadata_row(settings, DAY_ONE)
    try:
        # When another delivery of the event claims, with no retries allowed
        started = time.monotonic()
        result = service_on(moto_endpoint, settings, tmp_path, TRANSIENT_RETRIES="0").sync(
            DAY_ONE, None, SyncOptions(invocation_id="newcomer")
        )
        took = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()

    # Then it is answered in progress from a plain read at once, not after a lock wait
    assert result.status == "in_progress" and "syncing the same object" in (result.reason or "")
    assert took < ANSWERED_AT_ONCE_SECONDS, f"the claim took {took:.1f}s: it waited on the row lock"


def test_a_newer_object_behind_a_paused_holders_row_lock_retries_and_then_takes_the_date(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given a live holder of an older object whose open transaction locks the date's row
    file_table = snowflake_table(2_000, seed=242)
    upload_to(moto_endpoint, DAY_ONE, write_pyarrow(file_table, tmp_path / "day.parquet"))
    started_by_someone_else(db, "an-older-etag")
    settings = with_long_lock_waits(migrated_settings)
    holder = hold_the_metadata_row(settings, DAY_ONE)

    # When the newer object's event claims with no retries, it is not dropped: it fails as
    # transient at once (no lock wait), for the in-process retry or Lambda's to claim again
    started = time.monotonic()
    with pytest.raises(TransientError, match="locked by its holder's open transaction"):
        service_on(moto_endpoint, settings, tmp_path, TRANSIENT_RETRIES="0").sync(
            DAY_ONE, None, SyncOptions(invocation_id="newer")
        )
    took = time.monotonic() - started
    assert took < ANSWERED_AT_ONCE_SECONDS, f"the claim took {took:.1f}s: it waited on the row lock"

    # Then once the holder's transaction ends, the retry takes the date and publishes the newer object
    holder.rollback()
    holder.close()
    result = service_on(moto_endpoint, migrated_settings, tmp_path).sync(DAY_ONE, None, SyncOptions(invocation_id="newer"))
    assert result.status == "completed"
    assert table_rows(db) == expected_rows(file_table)


def test_the_server_ends_a_paused_sessions_transaction_after_the_idle_timeout(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any]
) -> None:
    # Given a session of ours with a 1-second idle timeout, holding a row lock in an open transaction
    started_by_someone_else(db, "etag")
    stalled = connect(migrated_settings, idle_timeout_seconds=1)
    stalled.begin()
    stalled.cursor().execute("SELECT * FROM upsell_signal_sync_metadata WHERE sync_date = %s FOR UPDATE", (DAY_ONE,))

    # When it says nothing for longer than that (a paused process)
    time.sleep(2.5)

    # Then the server has ended it: the row is free, and the stalled session finds itself gone
    other = connect(migrated_settings)
    try:
        other.begin()
        other.cursor().execute("SELECT * FROM upsell_signal_sync_metadata WHERE sync_date = %s FOR UPDATE NOWAIT", (DAY_ONE,))
        other.rollback()
    finally:
        other.close()
    with pytest.raises(pymysql.err.OperationalError):
        stalled.cursor().execute("SELECT 1")


def test_a_paused_holder_is_taken_over_and_stands_down_when_it_wakes(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given day two staging in a separate process with the deployed lease (scaled) and a 1 s idle timeout
    day_one_table, day_two_table = day_one_published_and_day_two_uploaded(
        moto_endpoint, migrated_settings, tmp_path, 100_000, seed=243
    )
    worker = invoke_in_a_process(
        moto_endpoint, migrated_settings, work_dir_for(tmp_path, "paused"), DAY_TWO, stdout=-1, DB_IDLE_TIMEOUT_SECONDS="1"
    )

    # When it is paused (SIGSTOP) mid-staging, heartbeat and all, and another execution comes at Lambda's retry spacing
    try:
        wait_for(lambda: chunks_committed(db, DAY_TWO) >= 3, 60, "three committed chunks")
        worker.send_signal(signal.SIGSTOP)
        time.sleep(FIRST_RETRY_SECONDS)
        result = service_on(moto_endpoint, migrated_settings, work_dir_for(tmp_path, "taker")).sync(
            DAY_TWO, None, SyncOptions(invocation_id="taker")
        )
    finally:
        worker.send_signal(signal.SIGCONT)
    assert worker.stdout is not None
    answer = worker.stdout.read()
    worker.wait(timeout=60)

    # Then the taker resumes and publishes exactly; the woken holder stands down without writing
    assert result.status == "completed" and (result.rows_resumed or 0) > 0
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(day_two_table)}
    assert worker.returncode == 0 and b'"status": "skipped"' in answer and b"superseded" in answer
    assert metadata(db, DAY_TWO)["attempt"] == result.claim_number


def test_a_live_holder_slower_than_its_lease_keeps_the_date_by_its_heartbeat(
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a holder with the deployed lease (scaled) whose download takes several leases (a large
    # file): one step, no chunk commit to renew the lease on the way
    file_table = snowflake_table(2_000, seed=244)
    upload_to(moto_endpoint, DAY_ONE, write_pyarrow(file_table, tmp_path / "day.parquet"))
    downloading, finish_download = threading.Event(), threading.Event()
    download = SignalObjectStore.download

    def slow_download(store: SignalObjectStore, info: Any, destination: Path) -> None:
        if threading.current_thread().name == "holder":
            downloading.set()
            finish_download.wait(timeout=60)
        download(store, info, destination)

    monkeypatch.setattr(SignalObjectStore, "download", slow_download)
    outcomes: dict[str, Outcome] = {}
    holder = service_on(moto_endpoint, migrated_settings, work_dir_for(tmp_path, "holder"), CLAIM_LEASE_SECONDS=str(LEASE_SECONDS))
    thread = in_a_thread(outcomes, "holder", lambda: holder.sync(DAY_ONE, None, SyncOptions(invocation_id="holder")))
    assert downloading.wait(timeout=60)

    # When the lease is read every 0.1 s for two leases, as any newcomer's claim would read it, and
    # then another delivery of the same event comes, the holder still downloading
    lapses: list[float] = []  # how long each stretch of reads finding the lease lapsed lasted
    lapsed_since: float | None = None
    try:
        db.autocommit(True)  # each read sees the latest beat, not a snapshot
        started = time.monotonic()
        while (now := time.monotonic()) - started < 2 * LEASE_SECONDS:
            [lease] = query(
                db, "SELECT lease_expires_at > NOW() AS live FROM upsell_signal_sync_metadata WHERE sync_date = %s", (DAY_ONE,)
            )
            if not lease["live"] and lapsed_since is None:
                lapsed_since = now
            elif lease["live"] and lapsed_since is not None:
                lapses.append(round(now - lapsed_since, 2))
                lapsed_since = None
            time.sleep(0.1)
        newcomer = service_on(
            moto_endpoint, migrated_settings, work_dir_for(tmp_path, "newcomer"), CLAIM_LEASE_SECONDS=str(LEASE_SECONDS)
        ).sync(DAY_ONE, None, SyncOptions(invocation_id="newcomer"))
    finally:
        finish_download.set()
        thread.join(timeout=120)

    # Then the heartbeat kept the lease alive (a beat renewed it before every expiry; on a loaded
    # machine a late beat may let it lapse for less than a beat's interval, never for a beat's
    # worth): the newcomer is answered in progress, and the holder, never taken over, publishes
    # as the date's only attempt
    assert lapsed_since is None and all(lapse < LEASE_SECONDS / HEARTBEATS_PER_LEASE for lapse in lapses), lapses
    assert newcomer.status == "in_progress" and "syncing the same object" in (newcomer.reason or ""), newcomer
    assert (result_of(outcomes, "holder").status, result_of(outcomes, "holder").claim_number) == ("completed", 1)
    assert table_rows(db) == expected_rows(file_table)


def test_a_staging_writer_whose_pass_moved_under_it_is_refused(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any]
) -> None:
    # Given a pass of the date's staging, and two writers of it that both read it at row 0 (the
    # holder's own retry racing a commit it thought lost: the claim's token cannot tell them apart)
    started_by_someone_else(db, "etag")
    first, second = Repository(connect(migrated_settings)), Repository(connect(migrated_settings))
    try:
        first.staging.start_staging(DAY_ONE, "etag", 1, "a-paused-holder")
        with first.transaction("the first writer's chunk"):
            first.staging.advance_progress(DAY_ONE, "etag", from_row=0, to_row=500, staged=500, rejected=0)

        # When the second commits its chunk from the row it read
        # Then it is refused, and the progress is the first writer's alone
        with pytest.raises(ClaimLost, match="moved under us"), second.transaction("the second writer's chunk"):
            second.staging.advance_progress(DAY_ONE, "etag", from_row=0, to_row=500, staged=500, rejected=0)
    finally:
        first.close()
        second.close()
    assert query(db, "SELECT rows_read, rows_staged, chunks_committed FROM upsell_signal_staging_progress") == [
        {"rows_read": 500, "rows_staged": 500, "chunks_committed": 1}
    ]


# -- staging clean-up and attempt numbers ---------------------------------------------------


def test_a_publishers_clean_up_leaves_a_newer_passs_staging_alone(
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given day two published by an execution that is slow (paused) to clean its staging up
    day_one_table, first_export = day_one_published_and_day_two_uploaded(
        moto_endpoint, migrated_settings, tmp_path, 20_000, seed=251
    )
    published = threading.Event()
    resume_clean_up = threading.Event()

    def paused_clean_up(_repository: Any) -> None:
        published.set()
        resume_clean_up.wait(timeout=60)

    outcomes: dict[str, Outcome] = {}
    publisher = service_on(
        moto_endpoint,
        migrated_settings,
        work_dir_for(tmp_path, "publisher"),
        hooks=SyncHooks(before_clean_up=paused_clean_up),
    )
    thread = in_a_thread(outcomes, "publisher", lambda: publisher.sync(DAY_TWO, None, SyncOptions(invocation_id="publisher")))
    assert published.wait(timeout=60)

    # When a corrected re-export starts its own pass, and the first execution's clean-up runs mid-way
    correction = day_two(day_one_table, seed=253)
    upload_to(moto_endpoint, DAY_TWO, write_pyarrow(correction, tmp_path / "correction.parquet"))
    newer = service_on(moto_endpoint, migrated_settings, work_dir_for(tmp_path, "newer"), STAGING_CHUNK_ROWS="500")
    newer_thread = in_a_thread(outcomes, "newer", lambda: newer.sync(DAY_TWO, None, SyncOptions(invocation_id="newer")))
    etag = etag_now(moto_endpoint, DAY_TWO)
    assert etag != metadata(db, DAY_TWO)["completed_etag"]
    wait_for(
        lambda: bool(query(db, "SELECT 1 FROM upsell_signal_staging_progress WHERE s3_etag = %s AND chunks_committed >= 2", (etag,))),
        60,
        "two chunks of the newer pass",
    )
    with caplog.at_level("INFO", logger="upsell_signals"):
        resume_clean_up.set()
        thread.join(timeout=60)
        newer_thread.join(timeout=120)

    # Then the newer pass was left alone and publishes the correction exactly; the publisher, having
    # seen the newer object, answers for it as in progress (or already done) instead of syncing it twice
    assert result_of(outcomes, "publisher").status in ("in_progress", "skipped")
    publisher_runs = query(db, "SELECT status FROM upsell_signal_sync_runs WHERE workflow_id = 'publisher' ORDER BY id")
    assert publisher_runs[0] == {"status": "completed"}
    assert result_of(outcomes, "newer").status == "completed"
    # What the fence protects: the publisher's clean-up found the staging owned by the newer pass
    # and dropped nothing, so the newer pass never met its partition gone (error 1526), never
    # retried, and staged every chunk once (a dropped pass would have been restaged from row 0)
    records = [(record.threadName, record.getMessage()) for record in caplog.records]
    assert ("publisher", "staging of 2026-01-31 belongs to a newer pass or another execution now: left in place") in records
    assert not [message for thread_name, message in records if thread_name == "newer" and "transient error" in message]
    assert [message for thread_name, message in records if thread_name == "newer" and " rows, rejected " in message] == [
        f"staged {len(expected_rows(correction))} rows, rejected 0, in {-(-correction.num_rows // 500)} chunks"
    ]
    # (keep mode: companies absent from the correction keep what the first export published)
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(first_export), **expected_rows(correction)}


def test_a_dry_run_never_gives_its_attempt_number_back(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given a never-synced date whose file has two rejected rows, dry-run first
    file_table = snowflake_table(200, seed=261)
    cells = file_table["CORE_PRODUCT"].to_pylist()
    cells[3] = cells[7] = "x" * 40
    file_table = file_table.set_column(file_table.schema.get_field_index("CORE_PRODUCT"), "CORE_PRODUCT", [cells])
    upload_to(moto_endpoint, DAY_ONE, write_pyarrow(file_table, tmp_path / "day.parquet"))
    service = service_on(moto_endpoint, migrated_settings, tmp_path)
    dry = service.sync(DAY_ONE, None, SyncOptions(invocation_id="dry", dry_run=True))

    # When the real sync runs
    real = service.sync(DAY_ONE, None, SyncOptions(invocation_id="real"))

    # Then it has an attempt number of its own, and the date's rejects are counted once
    assert (dry.status, real.status) == ("dry_run", "completed")
    assert real.claim_number is not None and dry.claim_number is not None and real.claim_number > dry.claim_number
    queries = StatusQueries(connect(migrated_settings))
    try:
        total, _ = queries.rejects_for(DAY_ONE, 10)
    finally:
        queries.connection.close()
    assert total == 2
