"""Real faults: a killed process, a killed connection, a second invocation at once, a reader during publish."""

from __future__ import annotations

import datetime as dt
import functools
import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pymysql
import pytest
from botocore.config import Config

from functions.ingest.hooks import SyncHooks
from functions.ingest.repository import Repository
from functions.ingest.repository.ledger import ClaimLedger
from functions.ingest.s3_source import SignalObjectStore
from functions.ingest.sync_values import SyncAnswer, SyncOptions, SyncResult
from functions.shared.contract import object_key_for
from functions.shared.db import connect
from functions.shared.settings import DatabaseSettings
from tests.factories import day_two, snowflake_table, write_pyarrow
from tests.integration.conftest import (
    BUCKET,
    DAY_ONE,
    DAY_TWO,
    PREFIX,
    PUBLISH_LOCK_HOLDER,
    Outcome,
    chunks_committed,
    day_one_published_and_day_two_uploaded,
    expected_rows,
    in_a_thread,
    invoke_in_a_process,
    messages,
    query,
    result_of,
    service_on,
    table_rows,
    uncommitted_table_rows,
    upload_to,
    wait_for,
    work_dir_for,
)
from tests.lambda_timing import FIRST_RETRY_SECONDS
from tests.stand_ins import Fault, faulty_proxy


def test_an_attempt_killed_mid_staging_is_resumed_without_restaging(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given day one published, and a 100,000-row day two staged in chunks of 1,000 by a separate process
    day_one_table, day_two_table = day_one_published_and_day_two_uploaded(
        moto_endpoint, migrated_settings, tmp_path, 100_000, seed=91
    )
    worker = invoke_in_a_process(moto_endpoint, migrated_settings, tmp_path, DAY_TWO)

    # When the process is killed (SIGKILL) once a few chunks are committed
    wait_for(lambda: chunks_committed(db, DAY_TWO) >= 3, 60, "three committed chunks")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    committed_rows = int(query(db, "SELECT rows_read FROM upsell_signal_staging_progress")[0]["rows_read"])
    assert query(db, "SELECT status FROM upsell_signal_sync_metadata WHERE sync_date = %s", (DAY_TWO,)) == [{"status": "started"}]
    assert 0 < committed_rows < day_two_table.num_rows

    # Then Lambda's retry, at its spacing (scaled), takes over and resumes
    time.sleep(FIRST_RETRY_SECONDS)
    result = service_on(moto_endpoint, migrated_settings, tmp_path).sync(DAY_TWO, None, SyncOptions(invocation_id="retry"))

    assert (result.status, result.claim_number, result.rows_resumed) == ("completed", 2, committed_rows)
    assert result.rows_processed == day_two_table.num_rows
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(day_two_table)}


def test_a_first_load_killed_midway_leaves_the_table_empty_and_the_next_attempt_stages_it(
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given an empty table, and a first load running straight into it in a separate process
    file_table = snowflake_table(100_000, seed=97)
    upload_to(moto_endpoint, DAY_ONE, write_pyarrow(file_table, tmp_path / "day.parquet"))
    worker = invoke_in_a_process(moto_endpoint, migrated_settings, tmp_path, DAY_ONE)

    # When the process is killed (SIGKILL) with thousands of rows loaded but not committed
    wait_for(lambda: uncommitted_table_rows(migrated_settings) >= 3_000, 60, "3,000 uncommitted rows")
    assert table_rows(db) == {}  # a reader sees none of them
    worker.send_signal(signal.SIGKILL)
    worker.wait()

    # Then the server rolls the load back; Lambda's retry, at its spacing (scaled), stages
    # (so that it could itself resume) and publishes the whole file
    wait_for(lambda: uncommitted_table_rows(migrated_settings) == 0, 60, "the rollback of the killed load")
    time.sleep(FIRST_RETRY_SECONDS)
    with caplog.at_level("INFO", logger="upsell_signals"):
        result = service_on(moto_endpoint, migrated_settings, tmp_path).sync(DAY_ONE, None, SyncOptions(invocation_id="retry"))

    assert (result.status, result.claim_number, result.rows_inserted) == ("completed", 2, 100_000)
    assert any(record.getMessage().startswith("staged 100000 rows") for record in caplog.records)
    assert table_rows(db) == expected_rows(file_table)


def kill_the_loading_connection(
    settings: DatabaseSettings, db: pymysql.Connection[Any], table: str, ready: Callable[[], bool]
) -> tuple[threading.Thread, list[int]]:
    """A thread that KILLs the connection running LOAD DATA into `table` once `ready()` holds."""
    killed: list[int] = []

    def kill() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            rows = query(
                db,
                "SELECT id FROM information_schema.processlist WHERE info LIKE %s AND db = %s",
                (f"LOAD DATA%%INTO TABLE {table} %%", settings.name),
            )
            if rows and ready():
                db.cursor().execute("KILL CONNECTION %s", (rows[0]["id"],))
                killed.append(int(rows[0]["id"]))
            time.sleep(0.001)

    killer = threading.Thread(target=kill)
    killer.start()
    return killer, killed


def test_a_connection_killed_mid_staging_is_retried_and_resumes_exactly(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given day one published, and day two being staged in chunks of 500
    day_one_table, day_two_table = day_one_published_and_day_two_uploaded(
        moto_endpoint, migrated_settings, tmp_path, 60_000, seed=92
    )

    # When its connection is KILLed in the middle of a LOAD DATA
    killer, killed = kill_the_loading_connection(
        migrated_settings, db, "upsell_signal_staging", lambda: chunks_committed(db, DAY_TWO) >= 2
    )
    result = service_on(moto_endpoint, migrated_settings, tmp_path, STAGING_CHUNK_ROWS="500").sync(
        DAY_TWO, None, SyncOptions(invocation_id="victim")
    )
    killer.join()

    # Then the same invocation retries, resumes from the last committed chunk, and publishes exactly
    assert killed, "the killer never found a LOAD DATA to kill"
    assert result.status == "completed" and result.claim_number == 1 and (result.rows_resumed or 0) >= 1_000
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(day_two_table)}
    runs = query(db, "SELECT status FROM upsell_signal_sync_runs WHERE sync_date = %s", (DAY_TWO,))
    assert runs == [{"status": "completed"}]


def with_keys_copied(table: pa.Table, copies: dict[int, int]) -> pa.Table:
    """`table` with the company id of each row `copies[target]` written over row `target`'s."""
    index = table.schema.get_field_index("CDMS_CANONICAL_COMPANY_ID")
    keys = table.column(index).to_pylist()
    for target, source in copies.items():
        keys[target] = keys[source]
    return table.set_column(index, table.schema.field(index), pa.array(keys, pa.string()))


def test_a_resumed_attempt_still_rejects_every_copy_of_a_key_duplicated_across_chunks(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given day one published, and a day two whose keys repeat across chunks of 500: one key
    # in the first chunk (staged before the fault) and the last, another in two late chunks
    day_one_table = snowflake_table(60_000, seed=94)
    upload_to(moto_endpoint, DAY_ONE, write_pyarrow(day_one_table, tmp_path / "one.parquet"))
    service_on(moto_endpoint, migrated_settings, tmp_path).sync(DAY_ONE, None, SyncOptions(invocation_id="day-one"))
    day_two_table = with_keys_copied(day_two(day_one_table, seed=95), {59_000: 10, 50_000: 40_000})
    upload_to(moto_endpoint, DAY_TWO, write_pyarrow(day_two_table, tmp_path / "two.parquet"))

    # When the staging connection is KILLed once two chunks are committed, and the attempt resumes
    killer, killed = kill_the_loading_connection(
        migrated_settings, db, "upsell_signal_staging", lambda: chunks_committed(db, DAY_TWO) >= 2
    )
    result = service_on(moto_endpoint, migrated_settings, tmp_path, STAGING_CHUNK_ROWS="500").sync(
        DAY_TWO, None, SyncOptions(invocation_id="victim")
    )
    killer.join()

    # Then every copy is rejected once, those before the resume point and after it alike, and
    # the companies they name keep their day-one rows
    assert killed, "the killer never found a LOAD DATA to kill"
    assert result.status == "completed" and result.claim_number == 1 and 1_000 <= (result.rows_resumed or 0) < 40_000
    rejects = query(db, "SELECT source_row, reasons FROM upsell_signal_rejected_rows WHERE sync_date = %s", (DAY_TWO,))
    assert sorted(row["source_row"] for row in rejects) == [10, 40_000, 50_000, 59_000]
    assert {row["reasons"] for row in rejects} == {"cdms_canonical_company_id appears 2 times in the file"}
    loaded = day_two_table.filter(pa.array([row not in (10, 40_000, 50_000, 59_000) for row in range(day_two_table.num_rows)]))
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(loaded)}


def test_a_connection_killed_mid_first_load_is_retried_by_staging(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given an empty table and a first load running straight into it
    file_table = snowflake_table(60_000, seed=99)
    upload_to(moto_endpoint, DAY_ONE, write_pyarrow(file_table, tmp_path / "day.parquet"))

    # When its connection is KILLed in the middle of a LOAD DATA, rows loaded but not committed
    killer, killed = kill_the_loading_connection(
        migrated_settings, db, "company_upsell_signals", lambda: uncommitted_table_rows(migrated_settings) >= 1_000
    )
    result = service_on(moto_endpoint, migrated_settings, tmp_path, STAGING_CHUNK_ROWS="500").sync(
        DAY_ONE, None, SyncOptions(invocation_id="victim")
    )
    killer.join()

    # Then the load is rolled back, and the in-process retry stages the file and publishes it exactly
    assert killed, "the killer never found a LOAD DATA to kill"
    assert (result.status, result.claim_number, result.rows_inserted, result.rows_resumed) == ("completed", 1, 60_000, 0)
    assert table_rows(db) == expected_rows(file_table)
    assert query(db, "SELECT status FROM upsell_signal_sync_runs") == [{"status": "completed"}]


INVOCATIONS_AT_ONCE = 6


def six_at_once(
    endpoint: str, settings: DatabaseSettings, tmp_path: Path, *, sleep: Callable[[float], None] | None = None
) -> dict[str, SyncAnswer]:
    """Six invocations syncing DAY_ONE at once (six deliveries, six execution environments): each one's answer."""
    names = [f"invocation-{number}" for number in range(INVOCATIONS_AT_ONCE)]
    start_together = threading.Barrier(INVOCATIONS_AT_ONCE)
    outcomes: dict[str, Outcome] = {}

    def invoke(invocation_id: str) -> SyncAnswer:
        service = service_on(endpoint, settings, work_dir_for(tmp_path, invocation_id), sleep=sleep)
        start_together.wait()
        return service.sync(DAY_ONE, None, SyncOptions(invocation_id=invocation_id))

    threads = [in_a_thread(outcomes, name, functools.partial(invoke, name)) for name in names]
    for thread in threads:
        thread.join(timeout=180)
    return {name: result_of(outcomes, name) for name in names}


def test_six_invocations_at_once_one_publishes_the_others_are_in_progress(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given one file, and six invocations for its date (six deliveries, six execution environments)
    file_table = snowflake_table(30_000, seed=93)
    upload_to(moto_endpoint, DAY_ONE, write_pyarrow(file_table, tmp_path / "day.parquet"))

    # When all six run at once
    results = six_at_once(moto_endpoint, migrated_settings, tmp_path)

    # Then exactly one syncs the date, every other answers in progress naming the holder, and the
    # table, the ledger and the run history show one sync
    winners = [name for name, result in results.items() if result.status == "completed"]
    assert len(winners) == 1, {name: result.status for name, result in results.items()}
    (winner,) = winners
    for name, result in results.items():
        if name != winner:
            assert result.status == "in_progress" and "holds the date" in (result.reason or ""), (name, result)
    assert query(db, "SELECT workflow_id, attempt, status FROM upsell_signal_sync_metadata") == [
        {"workflow_id": winner, "attempt": 1, "status": "completed"}
    ]
    runs = query(db, "SELECT status, COUNT(*) AS n FROM upsell_signal_sync_runs GROUP BY status ORDER BY status")
    assert runs == [{"status": "completed", "n": 1}, {"status": "in_progress", "n": INVOCATIONS_AT_ONCE - 1}]
    assert table_rows(db) == expected_rows(file_table)


def test_six_invocations_at_once_for_a_correction_of_a_completed_date_one_publishes_the_others_are_in_progress(
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a completed date whose file is corrected: the claims now meet an existing ledger row
    # (not a unique insert), and each claim is slowed inside its transaction so that they overlap
    first = snowflake_table(5_000, seed=611)
    upload_to(moto_endpoint, DAY_ONE, write_pyarrow(first, tmp_path / "first.parquet"))
    published = service_on(moto_endpoint, migrated_settings, work_dir_for(tmp_path, "first"))
    assert published.sync(DAY_ONE, None, SyncOptions(invocation_id="first")).status == "completed"
    correction = day_two(first, seed=612)
    upload_to(moto_endpoint, DAY_ONE, write_pyarrow(correction, tmp_path / "correction.parquet"))
    next_claim_number = ClaimLedger._next_claim_number

    def slowly(self: ClaimLedger, *args: Any) -> int:
        time.sleep(0.5)
        return next_claim_number(self, *args)

    monkeypatch.setattr(ClaimLedger, "_next_claim_number", slowly)
    download = SignalObjectStore.download

    def held_a_while(self: SignalObjectStore, *args: Any) -> None:
        # Only a claim's holder downloads: it keeps the date long enough that the others' retries
        # (0.25 s, then 0.5 s, doubling) meet it rather than arrive after a fast sync has ended.
        time.sleep(3)
        download(self, *args)

    monkeypatch.setattr(SignalObjectStore, "download", held_a_while)

    # When six deliveries of the correction run at once, with real waits: a claim meeting the row
    # locked by another's open claim tries again shortly
    results = six_at_once(moto_endpoint, migrated_settings, tmp_path, sleep=time.sleep)

    # Then one publishes it; each other one met the holder, or arrived after it had finished
    winners = [name for name, result in results.items() if result.status == "completed"]
    assert len(winners) == 1, {name: (result.status, result.reason) for name, result in results.items()}
    for name, result in results.items():
        if name not in winners:
            assert result.status == "in_progress" or (
                result.status == "skipped" and (result.reason or "").startswith("already completed")
            ), (name, result.status, result.reason)
    assert any(result.status == "in_progress" for result in results.values()), "no claim met the holder"
    assert query(db, "SELECT attempt, status FROM upsell_signal_sync_metadata") == [{"attempt": 2, "status": "completed"}]
    rows = table_rows(db)
    assert all(rows[key] == row for key, row in expected_rows(correction).items())  # the rows it no longer has are kept


@pytest.mark.parametrize("publish", ["first load", "day two", "day two deleting"])
def test_a_reader_polling_during_publish_never_sees_half_a_day(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path, publish: str
) -> None:
    day_one_table = snowflake_table(40_000, seed=94)
    upload_to(moto_endpoint, DAY_ONE, write_pyarrow(day_one_table, tmp_path / "one.parquet"))
    upload_to(moto_endpoint, DAY_TWO, write_pyarrow(day_two(day_one_table, seed=95), tmp_path / "two.parquet"))
    deleting = {"MISSING_ROWS": "delete"} if publish == "day two deleting" else {}
    service = service_on(moto_endpoint, migrated_settings, tmp_path, **deleting)
    if publish.startswith("day two"):
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
    sync_date = DAY_TWO if publish.startswith("day two") else DAY_ONE
    result = service.sync(sync_date, None, SyncOptions(invocation_id=f"{publish}-{uuid.uuid4()}"))
    time.sleep(0.05)
    done.set()
    poller.join()

    after = query(db, fingerprint_sql)[0]
    assert result.status == "completed" and before != after
    assert bool(result.rows_deleted) == bool(deleting)
    assert len(observations) > 20
    assert all(observation in (before, after) for observation in observations)


def test_the_connection_listing_changes_killed_mid_staging_is_retried_and_resumes_exactly(
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given day one published, and day two staging in chunks of 500 while a second
    # connection lists each chunk's changes and holds the publish lock
    day_one_table, day_two_table = day_one_published_and_day_two_uploaded(
        moto_endpoint, migrated_settings, tmp_path, 60_000, seed=101
    )
    killed: list[int] = []

    def kill_the_lister() -> None:
        wait_for(lambda: chunks_committed(db, DAY_TWO) >= 2, 60, "two committed chunks")
        [lister] = query(db, PUBLISH_LOCK_HOLDER)
        if lister["holder"] is not None:  # else nobody listed alongside: the assertion below says so
            db.cursor().execute("KILL CONNECTION %s", (lister["holder"],))
            killed.append(int(lister["holder"]))

    # When that connection is KILLed between two listings
    killer = threading.Thread(target=kill_the_lister)
    killer.start()
    with caplog.at_level("INFO", logger="upsell_signals"):
        result = service_on(moto_endpoint, migrated_settings, tmp_path, STAGING_CHUNK_ROWS="500").sync(
            DAY_TWO, None, SyncOptions(invocation_id="victim")
        )
    killer.join()

    # Then the invocation retries in-process, lists what was staged, resumes, and publishes exactly
    assert killed, "nobody held the publish lock while day two staged"
    assert messages(caplog, "sync: transient error, retry 1")
    assert result.status == "completed" and result.claim_number == 1 and (result.rows_resumed or 0) >= 1_000
    assert result.rows_inserted == len(expected_rows(day_two_table).keys() - expected_rows(day_one_table).keys())
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(day_two_table)}
    assert query(db, PUBLISH_LOCK_HOLDER) == [{"holder": None}]


def test_with_the_publish_lock_busy_at_the_start_the_sync_waits_for_it_before_comparing(
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
) -> None:
    # Given day one published, and another session holding the publish lock as day two starts
    day_one_table, day_two_table = day_one_published_and_day_two_uploaded(
        moto_endpoint, migrated_settings, tmp_path, 20_000, seed=103
    )
    holder = connect(migrated_settings)
    holder.cursor().execute("SELECT GET_LOCK('company_upsell_signals_publish', 0)")
    staged_while_held: list[int] = []

    def release_after_a_while() -> None:
        time.sleep(2)
        staged_while_held.extend(int(row["rows_read"]) for row in query(db, "SELECT rows_read FROM upsell_signal_staging_progress"))
        holder.close()

    # When day two syncs, and the lock is released two seconds later
    releaser = threading.Thread(target=release_after_a_while)
    releaser.start()
    started = time.monotonic()
    result = service_on(moto_endpoint, migrated_settings, tmp_path, PUBLISH_LOCK_TIMEOUT_SECONDS="30").sync(
        DAY_TWO, None, SyncOptions(invocation_id="late")
    )
    releaser.join()

    # Then it waited for the lock before comparing the file with the table (the table must not
    # change between the two), and published exactly
    assert time.monotonic() - started >= 2
    assert staged_while_held == [0]  # the pass begun, not a row staged while the lock was held
    assert (result.status, result.rows_processed) == ("completed", day_two_table.num_rows)
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(day_two_table)}


def test_another_dates_publish_waits_for_the_date_listing_alongside_its_staging(
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given day one published; day two staging slowly (chunks of 500) and listing its changes
    day_one_table, day_two_table = day_one_published_and_day_two_uploaded(
        moto_endpoint, migrated_settings, tmp_path, 40_000, seed=105
    )
    day_three = DAY_TWO + dt.timedelta(days=1)
    day_three_table = day_two(day_one_table, seed=106)  # its new keys are day two's new keys, with other values
    upload_to(moto_endpoint, day_three, write_pyarrow(day_three_table, tmp_path / "three.parquet"))
    outcomes: dict[str, Outcome] = {}
    slow = service_on(moto_endpoint, migrated_settings, work_dir_for(tmp_path, "two"), STAGING_CHUNK_ROWS="500")

    # When day three (staged in one chunk, so ready to publish early) syncs meanwhile
    with caplog.at_level("INFO", logger="upsell_signals"):
        slow_thread = in_a_thread(outcomes, "day two", lambda: slow.sync(DAY_TWO, None, SyncOptions(invocation_id="day-two")))
        wait_for(lambda: chunks_committed(db, DAY_TWO) >= 2, 60, "day two's first chunks")
        day_two_lister = query(db, PUBLISH_LOCK_HOLDER)[0]["holder"]
        fast = service_on(moto_endpoint, migrated_settings, work_dir_for(tmp_path, "three"), STAGING_CHUNK_ROWS="100000")
        day_three_result = fast.sync(day_three, None, SyncOptions(invocation_id="day-three"))
        slow_thread.join(timeout=120)
    results = {DAY_TWO: result_of(outcomes, "day two"), day_three: day_three_result}

    # Then day three published only after day two, neither had to retry, and the table is day three's
    assert day_two_lister is not None, "nobody held the publish lock while day two staged"
    assert [results[day].status for day in (DAY_TWO, day_three)] == ["completed", "completed"]
    finished = query(db, "SELECT sync_date FROM upsell_signal_sync_runs WHERE status = 'completed' ORDER BY finished_at, id")
    assert [row["sync_date"] for row in finished] == [DAY_ONE, DAY_TWO, day_three]
    assert not messages(caplog, "transient error")
    assert table_rows(db) == {
        **expected_rows(day_one_table),
        **expected_rows(day_two_table),
        **expected_rows(day_three_table),
    }


@pytest.mark.parametrize("fault", ["reset", "close", "garble"])
def test_a_download_broken_midway_is_retried_in_process_and_the_date_syncs_exactly(
    fault: Fault,
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a file in S3 (uploaded without an S3 checksum, so that a garbled body is caught
    # by its MD5 ETag), read through a proxy that breaks the first download halfway:
    # the connection reset, closed short of its length, or one byte flipped
    file_table = snowflake_table(20_000, seed=101)
    path = write_pyarrow(file_table, tmp_path / "day.parquet")
    plain_upload = boto3.client("s3", endpoint_url=moto_endpoint, config=Config(request_checksum_calculation="when_required"))
    plain_upload.upload_file(str(path), BUCKET, object_key_for(PREFIX, DAY_ONE))
    work_dir = work_dir_for(tmp_path, "work")

    # When the date syncs through it
    with (
        faulty_proxy(moto_endpoint, after_bytes=path.stat().st_size // 2, fault=fault) as proxy,
        caplog.at_level("WARNING", logger="upsell_signals"),
    ):
        result = service_on(proxy.endpoint, migrated_settings, work_dir).sync(DAY_ONE, None, SyncOptions(invocation_id="cut"))

    # Then one in-process retry downloads again, and the table holds the file exactly
    assert proxy.faults_made == 1
    retries = messages(caplog, "transient error, retry")
    assert len(retries) == 1 and f"s3://{BUCKET}/{object_key_for(PREFIX, DAY_ONE)}" in retries[0]
    assert (result.status, result.claim_number, result.rows_inserted) == ("completed", 1, file_table.num_rows)
    assert table_rows(db) == expected_rows(file_table)
    assert query(db, "SELECT status FROM upsell_signal_sync_runs") == [{"status": "completed"}]
    assert list(work_dir.iterdir()) == []  # no partial download left behind


def test_a_publish_whose_commit_lands_but_whose_reply_is_lost_is_answered_and_recorded_completed(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given day one published and day two uploaded, and a database that restarts just as day two's
    # publish commits: the COMMIT is durable on the server, its reply never reaches the client
    day_one_table, day_two_table = day_one_published_and_day_two_uploaded(
        moto_endpoint, migrated_settings, tmp_path, 3_000, seed=921
    )

    def lose_the_commits_reply(repository: Repository) -> None:
        connection = repository.connection
        real_commit = connection.commit
        commits = []

        def commit() -> None:
            real_commit()
            commits.append(1)
            if len(commits) == 2:  # the lease's renewal first, then the publish's
                db.cursor().execute(f"KILL {connection.thread_id()}")
                raise pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")

        connection.commit = commit  # type: ignore[method-assign]

    service = service_on(moto_endpoint, migrated_settings, tmp_path, hooks=SyncHooks(before_publish=lose_the_commits_reply))

    # When day two syncs (its in-process retry finds the date completed)
    answer = service.sync(DAY_TWO, None, SyncOptions(invocation_id="lost-reply"))

    # Then the table holds day two, and the answer and the run history say this run published it,
    # with its counts, not that another execution took the date over
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(day_two_table)}
    runs = query(db, "SELECT attempt, status, rows_updated FROM upsell_signal_sync_runs WHERE sync_date = %s", (DAY_TWO,))
    assert (answer.status, [run["status"] for run in runs]) == ("completed", ["completed"]), (answer, runs)
    assert isinstance(answer, SyncResult) and answer.rows_updated == runs[0]["rows_updated"] > 0, answer
