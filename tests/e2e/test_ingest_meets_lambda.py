"""The deployed ingest meets Lambda as AWS runs it: killed at its timeout, retried at Lambda's spacing, delivered twice.

Every test runs the dev template's artifact on the local Lambda (tests/local_lambda) against
the suite's MariaDB and moto. The ingest is a durable function: each Invoke of its alias starts
an execution, which the local durable service (tests/local_lambda/durable.py, the durable
execution testing SDK's service) drives through as many invocations as it needs. Lambda's
timings are scaled as tests/lambda_timing.py scales them: a run that raised is retried as a step
FIRST_RETRY_SECONDS and SECOND_RETRY_SECONDS later, the pause between runs is scaled alike, and
the function's lease is the template's scaled alike (LEASE_SECONDS). A test that needs a kill
shortens the function's timeout to a few seconds; its time-budget margin is shortened with it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pymysql

from functions.shared.contract import CLAIM_LEASE_SECONDS, LAMBDA_FIRST_RETRY_SECONDS, PUBLISH_LOCK
from functions.shared.db import connect
from functions.shared.settings import DatabaseSettings
from tests import lambda_timing
from tests.e2e.deployed_ingest import (
    INGEST_FUNCTION,
    INGEST_QUALIFIER,
    REPO_ROOT,
    StandIns,
    file_arrival,
    ingest_spec,
    wait_until,
)
from tests.factories import snowflake_table, write_pyarrow
from tests.local_lambda import DurableFunction, FunctionSpec, Template
from tests.stand_ins import forwarder, free_port

# The time budget keeps this much of a run unused (30 s deployed); a run here lasts seconds.
MARGIN_SECONDS = 5
# Long enough for a cold start's claim and download on a loaded machine, short enough to wait out.
SHORT_TIMEOUT_SECONDS = 10
# Generous bounds on waiting for a condition: a slow machine is slow, not wrong.
PATIENCE_SECONDS = 120
# A step's retry delay counts from its checkpoint, which the invocation sends just before it ends.
CHECKPOINT_SLACK_SECONDS = 0.5
SYNC_DATE = "2026-01-30"
KEY = f"passive_upsell_signals/dt={SYNC_DATE}/data.parquet"


def scaled_ingest(template: Template, stand_ins: StandIns, *, timeout_seconds: int = 900, **environment: str) -> FunctionSpec:
    """The template's ingest with Lambda's timings scaled: its lease, its in-process transient wait, a short margin."""
    assert template.function_spec(INGEST_FUNCTION).environment["CLAIM_LEASE_SECONDS"] == str(CLAIM_LEASE_SECONDS)
    return ingest_spec(
        template,
        stand_ins,
        timeout_seconds=timeout_seconds,
        CLAIM_LEASE_SECONDS=str(lambda_timing.LEASE_SECONDS),
        TRANSIENT_WAIT_SECONDS=str(lambda_timing.TRANSIENT_WAIT_SECONDS),
        TIME_BUDGET_MARGIN_SECONDS=str(MARGIN_SECONDS),
        **environment,
    )


@contextmanager
def on_local_lambda(
    spec: FunctionSpec, stand_ins: StandIns, log_path: Path, *, duplicate_rate: float = 0.0
) -> Iterator[DurableFunction]:
    """The durable function on the local Lambda, its retries and pauses scaled as the lease is."""
    with DurableFunction(
        spec,
        log_path=log_path,
        sqs_client=stand_ins.sqs,
        time_scale=lambda_timing.SCALE,
        duplicate_rate=duplicate_rate,
        qualifier=INGEST_QUALIFIER,
    ) as function:
        assert LAMBDA_FIRST_RETRY_SECONDS * function.time_scale == lambda_timing.FIRST_RETRY_SECONDS
        yield function


def upload_day(stand_ins: StandIns, tmp_path: Path, rows: int, *, key: str = KEY, seed: int = 5) -> pa.Table:
    table = snowflake_table(rows, seed=seed)
    stand_ins.s3.upload_file(str(write_pyarrow(table, tmp_path / f"{seed}.parquet")), stand_ins.bucket, key)
    return table


def published(db: pymysql.Connection[Any]) -> list[tuple[Any, ...]]:
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT cdms_canonical_company_id, most_recent_paid_ee_count, current_product_tier FROM company_upsell_signals ORDER BY 1"
        )
        return list(cursor.fetchall())


def in_file(table: pa.Table) -> list[tuple[Any, ...]]:
    columns = [table[name].to_pylist() for name in ("CDMS_CANONICAL_COMPANY_ID", "MOST_RECENT_PAID_EE_COUNT", "CURRENT_PRODUCT_TIER")]
    return sorted((company, None if paid is None else int(paid), tier) for company, paid, tier in zip(*columns, strict=True))


def with_a_product_too_long(table: pa.Table, row: int) -> pa.Table:
    """`table` with one row's CORE_PRODUCT longer than the column holds: validation rejects that row."""
    cells = table["CORE_PRODUCT"].to_pylist()
    cells[row] = "x" * 40
    return table.set_column(table.schema.get_field_index("CORE_PRODUCT"), "CORE_PRODUCT", [cells])


def date_status(db: pymysql.Connection[Any], sync_date: str = SYNC_DATE) -> tuple[Any, ...] | None:
    """The date's (status, rows_processed) in the claim ledger; None when no run ever claimed it."""
    with db.cursor() as cursor:
        cursor.execute("SELECT status, rows_processed FROM upsell_signal_sync_metadata WHERE sync_date = %s", (sync_date,))
        row: tuple[Any, ...] | None = cursor.fetchone()
        return row


def runs(db: pymysql.Connection[Any], sync_date: str = SYNC_DATE) -> list[tuple[Any, ...]]:
    """The date's run history: (trigger, status, error type, rows resumed), oldest first."""
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT trigger_source, status, error_type, rows_resumed FROM upsell_signal_sync_runs WHERE sync_date = %s ORDER BY id",
            (sync_date,),
        )
        return list(cursor.fetchall())


def waiting_for_the_publish_lock(db: pymysql.Connection[Any]) -> int:
    """How many other sessions wait in GET_LOCK now (the function's, while the test holds the lock)."""
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND INFO LIKE 'SELECT GET_LOCK%%'"
        )
        (count,) = cursor.fetchone() or (0,)
        return int(count)


@contextmanager
def publish_lock_held(db: pymysql.Connection[Any]) -> Iterator[None]:
    """The publish lock, held by the test's own session (as a long publish of another date, or a migration, holds it)."""
    with db.cursor() as cursor:
        cursor.execute("SELECT GET_LOCK(%s, 0)", (PUBLISH_LOCK,))
        assert cursor.fetchone() == (1,)
        try:
            yield
        finally:
            cursor.execute("SELECT RELEASE_LOCK(%s)", (PUBLISH_LOCK,))


def waiting_for_the_table(db: pymysql.Connection[Any]) -> int:
    """How many other sessions wait for the signals table's metadata lock now (the function's, while the test locks it)."""
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() "
            "AND STATE LIKE 'Waiting for table metadata lock%%'"
        )
        (count,) = cursor.fetchone() or (0,)
        return int(count)


@contextmanager
def signals_table_locked(settings: DatabaseSettings, table: str = "company_upsell_signals") -> Iterator[None]:
    """The signals table (or `table`) write-locked by a session of the test's own (as a schema change or a long reader would).

    The ingest bounds its own waits for the publish lock by the time it has left, but not a
    statement's wait for a table: that one lasts until Lambda kills the run at its timeout.
    """
    locker = connect(settings)
    try:
        with locker.cursor() as cursor:
            cursor.execute(f"LOCK TABLES {table} WRITE")
        yield
    finally:
        locker.close()


def test_a_run_killed_at_its_timeout_is_completed_by_the_executions_next_invocation(
    template: Template, stand_ins: StandIns, db: pymysql.Connection[Any], tmp_path: Path
) -> None:
    # Given a day's file, and the signals table locked elsewhere, so that the run blocks in a statement
    day = upload_day(stand_ins, tmp_path, 3_000)
    spec = scaled_ingest(template, stand_ins, timeout_seconds=SHORT_TIMEOUT_SECONDS)
    with on_local_lambda(spec, stand_ins, tmp_path / "ingest.log") as ingest:
        with signals_table_locked(stand_ins.database):
            # When the file's arrival runs, waits for the table and is killed at its timeout without a word
            event = ingest.invoke_async(file_arrival(stand_ins.bucket, KEY))
            wait_until(lambda: waiting_for_the_table(db), timeout=PATIENCE_SECONDS, what="the run to wait for the table")
            wait_until(lambda: event.results, timeout=PATIENCE_SECONDS, what="the run to end")
            assert (date_status(db) or ("none",))[0] == "started"  # the dead run's claim, its lease no longer renewed
        # And the lock is free again before the service invokes the execution again, at its own time
        ingest.wait_idle(timeout=PATIENCE_SECONDS)

    # Then the next invocation of the same execution, a cold start, replayed it, took the date over and completed it
    killed, retry = event.results
    assert (killed.outcome, killed.payload["errorType"]) == ("timeout", "Sandbox.Timedout")
    assert (retry.outcome, retry.cold_start) == ("success", True)
    assert (event.status, event.answer["status"]) == ("SUCCEEDED", "completed"), event.answer
    # (the dead run's lease had lapsed by then; the next test has it still live)
    assert retry.started_at - killed.ended_at > lambda_timing.LEASE_SECONDS
    assert published(db) == in_file(day)
    assert date_status(db) == ("completed", 3_000)
    assert [(status, error) for _, status, error, _ in runs(db)] == [("failed", "TakenOver"), ("completed", None)]
    # And nothing waits for a person
    assert stand_ins.dead_letters() == []


def lease_seconds_left(db: pymysql.Connection[Any], sync_date: str = SYNC_DATE) -> float:
    """How long the date's claim stays live by the server's clock (negative: lapsed)."""
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT TIMESTAMPDIFF(MICROSECOND, NOW(6), lease_expires_at) / 1e6 FROM upsell_signal_sync_metadata "
            "WHERE sync_date = %s",
            (sync_date,),
        )
        (seconds,) = cursor.fetchone() or (None,)
        return float(seconds) if seconds is not None else float("-inf")


def test_a_run_killed_and_invoked_again_while_its_lease_still_runs_resumes_its_own_claim_and_completes(
    template: Template, stand_ins: StandIns, db: pymysql.Connection[Any], tmp_path: Path
) -> None:
    # Given a day's file, the deployed lease (30 s, unscaled: longer than the service waits before invoking a failed
    # execution again), and the signals table locked elsewhere, so that the run blocks in a statement
    day = upload_day(stand_ins, tmp_path, 3_000)
    spec = scaled_ingest(template, stand_ins, timeout_seconds=SHORT_TIMEOUT_SECONDS).with_environment(
        CLAIM_LEASE_SECONDS=str(CLAIM_LEASE_SECONDS)
    )
    with on_local_lambda(spec, stand_ins, tmp_path / "ingest.log") as ingest:
        with signals_table_locked(stand_ins.database):
            # When the file's arrival runs, waits for the table and is killed at its timeout without a word
            event = ingest.invoke_async(file_arrival(stand_ins.bucket, KEY))
            wait_until(lambda: waiting_for_the_table(db), timeout=PATIENCE_SECONDS, what="the run to wait for the table")
            wait_until(lambda: event.results, timeout=PATIENCE_SECONDS, what="the run to end")
            lease_left = lease_seconds_left(db)
        ingest.wait_idle(timeout=PATIENCE_SECONDS)

    # Then the execution's next invocation came while the dead run's lease still ran
    killed, resumed = event.results
    assert (killed.outcome, killed.payload["errorType"]) == ("timeout", "Sandbox.Timedout")
    assert resumed.outcome == "success", resumed.payload
    assert resumed.started_at - killed.ended_at < lease_left, (resumed.started_at - killed.ended_at, lease_left)
    # And, replaying the same run under the same holder token, it resumed the claim as its own and completed the date,
    # where a fresh token would have answered in_progress and ended the execution with the date unsynced
    assert (event.status, event.answer["status"], event.answer["attempt"]) == ("SUCCEEDED", "completed", 1), event.answer
    assert published(db) == in_file(day)
    assert date_status(db) == ("completed", 3_000)
    assert [(status, error) for _, status, error, _ in runs(db)] == [("failed", "TakenOver"), ("completed", None)]
    assert stand_ins.dead_letters() == []


def test_a_run_stopped_by_its_time_budget_hands_over_without_an_error_and_the_next_run_resumes_it(
    template: Template, stand_ins: StandIns, db: pymysql.Connection[Any], tmp_path: Path
) -> None:
    # Given a file of four chunks, and a run that starts late: the signals table is locked until its margin is near
    day = upload_day(stand_ins, tmp_path, 4_000)
    spec = scaled_ingest(template, stand_ins, timeout_seconds=SHORT_TIMEOUT_SECONDS, STAGING_CHUNK_ROWS="1000")
    with on_local_lambda(spec, stand_ins, tmp_path / "ingest.log") as ingest:
        with signals_table_locked(stand_ins.database):
            event = ingest.invoke_async(file_arrival(stand_ins.bucket, KEY))
            waiting = wait_until(
                lambda: waiting_for_the_table(db) and time.monotonic(), timeout=PATIENCE_SECONDS, what="the run to wait"
            )
            time.sleep(max(0.0, waiting + SHORT_TIMEOUT_SECONDS - MARGIN_SECONDS - time.monotonic()))
        # When the run goes on with less than its margin left
        ingest.wait_idle(timeout=PATIENCE_SECONDS)

    # Then the run stopped itself after a chunk, before its timeout, and the invocation ended without an error:
    # the hand-over is the run's checkpointed answer and the execution waits (PENDING) for its next run
    handed, resumed = event.results
    assert (handed.outcome, handed.payload["Status"]) == ("success", "PENDING"), handed.payload
    assert handed.ended_at - handed.started_at < SHORT_TIMEOUT_SECONDS
    # And the next invocation, after the pause, on the same warm process, resumed at the committed chunk and completed
    assert (resumed.outcome, resumed.cold_start) == ("success", False)
    # (after the pause between runs, not after anything like Lambda's async retry spacing)
    assert resumed.started_at - handed.ended_at < lambda_timing.FIRST_RETRY_SECONDS
    assert (event.status, event.answer["status"]) == ("SUCCEEDED", "completed"), event.answer
    assert published(db) == in_file(day)
    history = runs(db)
    assert [status for _, status, _, _ in history] == ["handed_over", "completed"]
    assert history[1][3] >= 1_000  # rows the first run had staged were not staged again
    assert stand_ins.dead_letters() == []


def test_a_delivery_of_the_same_event_twice_syncs_once(
    template: Template, stand_ins: StandIns, db: pymysql.Connection[Any], tmp_path: Path
) -> None:
    # Given a day's file, and Lambda delivering its arrival twice (it may, even after a success)
    day = upload_day(stand_ins, tmp_path, 2_000)
    with on_local_lambda(scaled_ingest(template, stand_ins), stand_ins, tmp_path / "ingest.log", duplicate_rate=1.0) as ingest:
        event = ingest.invoke_async(file_arrival(stand_ins.bucket, KEY))
        ingest.wait_idle(timeout=PATIENCE_SECONDS)

    # Then the first delivery's execution completed the date and the second's, the same request, answered skipped
    [second] = event.duplicates
    assert second.request_id == event.request_id
    assert (event.answer["status"], second.answer["status"]) == ("completed", "skipped"), (event.answer, second.answer)
    assert published(db) == in_file(day)
    assert [status for _, status, _, _ in runs(db)] == ["completed", "skipped"]
    assert stand_ins.dead_letters() == []


def test_a_duplicate_delivered_while_the_first_runs_answers_in_progress_and_the_first_completes(
    template: Template, stand_ins: StandIns, db: pymysql.Connection[Any], tmp_path: Path
) -> None:
    # Given a day's file, its arrival running in one execution environment and held up in its publish
    day = upload_day(stand_ins, tmp_path, 2_000)
    spec = scaled_ingest(template, stand_ins)
    with on_local_lambda(spec, stand_ins, tmp_path / "first.log") as first, on_local_lambda(spec, stand_ins, tmp_path / "second.log") as second:
        with publish_lock_held(db):
            event = first.invoke_async(file_arrival(stand_ins.bucket, KEY))
            wait_until(lambda: waiting_for_the_publish_lock(db), timeout=PATIENCE_SECONDS, what="the first run to hold the date")
            # When Lambda delivers the same request again, to a second environment
            duplicate = second.invoke(file_arrival(stand_ins.bucket, KEY))
        first.wait_idle(timeout=PATIENCE_SECONDS)

    # Then the duplicate touched nothing and said the date is in progress (a success: nothing is retried)
    [answered] = duplicate.results
    assert (answered.outcome, duplicate.answer["status"]) == ("success", "in_progress"), duplicate.answer
    # And the first completed the date exactly, once, in one invocation
    [_] = event.results
    assert event.answer["status"] == "completed", event.answer
    assert published(db) == in_file(day)
    assert sorted(status for _, status, _, _ in runs(db)) == ["completed", "in_progress"]
    assert stand_ins.dead_letters() == []


def test_a_corrupt_file_is_dead_lettered_once_by_the_handler_and_its_redrive_completes_once_the_file_is_fixed(
    template: Template, stand_ins: StandIns, db: pymysql.Connection[Any], tmp_path: Path
) -> None:
    # Given a file that is not Parquet
    stand_ins.s3.put_object(Bucket=stand_ins.bucket, Key=KEY, Body=b"PAR1 this is not a parquet file PAR1")
    with on_local_lambda(scaled_ingest(template, stand_ins), stand_ins, tmp_path / "ingest.log") as ingest:
        # When its arrival runs
        event = ingest.invoke_async(file_arrival(stand_ins.bucket, KEY))
        ingest.wait_idle(timeout=PATIENCE_SECONDS)
        # Then one invocation: the failure is permanent, dead-lettered by the handler with its reason, and answered
        [result] = event.results
        assert result.outcome == "success"
        assert (event.status, event.answer["status"], event.answer["error_type"]) == ("SUCCEEDED", "failed", "CorruptFile")
        [dead_letter] = stand_ins.dead_letters()
        assert dead_letter["error_type"] == "CorruptFile"
        assert dead_letter["original_event"] == file_arrival(stand_ins.bucket, KEY)
        assert date_status(db) == ("failed", None)

        # When the file is exported again and the dead letter is sent back to the function
        day = upload_day(stand_ins, tmp_path, 1_000)
        redrive = ingest.invoke(dead_letter)

    # Then the redrive completed the date
    assert redrive.answer["status"] == "completed", redrive.answer
    assert published(db) == in_file(day)
    assert [(trigger, status) for trigger, status, _, _ in runs(db)] == [
        ("eventbridge_s3", "failed"),
        ("redrive:eventbridge_s3", "completed"),
    ]
    assert stand_ins.dead_letters() == []


def test_a_database_unreachable_through_every_retry_lands_on_the_queue_and_its_redrive_completes_once_it_is_back(
    template: Template, stand_ins: StandIns, db: pymysql.Connection[Any], tmp_path: Path
) -> None:
    # Given a day's file, and the database's address answered by nothing (a database down beyond any wait)
    day = upload_day(stand_ins, tmp_path, 1_000)
    route_port = free_port()
    stand_ins.point_secret_at(route_port)
    spec = scaled_ingest(template, stand_ins, timeout_seconds=SHORT_TIMEOUT_SECONDS)
    with on_local_lambda(spec, stand_ins, tmp_path / "ingest.log") as ingest:
        # When the file's arrival runs
        event = ingest.invoke_async(file_arrival(stand_ins.bucket, KEY))
        ingest.wait_idle(timeout=PATIENCE_SECONDS)

        # Then the run was retried as a step twice, at Lambda's async spacing, each attempt failing as transient after
        # waiting within its time; no invocation failed (each ended by checkpointing), the execution did
        assert [r.outcome for r in event.results] == ["success"] * 3
        first, second, third = event.results
        assert second.started_at - first.ended_at >= lambda_timing.FIRST_RETRY_SECONDS - CHECKPOINT_SLACK_SECONDS
        assert third.started_at - second.ended_at >= lambda_timing.SECOND_RETRY_SECONDS - CHECKPOINT_SLACK_SECONDS
        assert event.status == "FAILED", event.status
        assert event.error is not None and event.error["errorType"].endswith("StepError")  # the run's last failure
        assert "Can't connect to MySQL server" in event.error["errorMessage"]
        # And one dead letter of it is on the function's dead-letter queue, as Lambda sends a durable function's:
        # the original event as-is, the reason in its attributes (docs/operations.md, "A redrive")
        [(record, attributes)] = stand_ins.dead_letters_with_attributes()
        assert record == file_arrival(stand_ins.bucket, KEY)
        assert attributes["RequestID"] == event.request_id
        assert "Can't connect to MySQL server" in attributes["ErrorMessage"]
        assert date_status(db) is None  # it never reached the database

        # When the database is reachable again and the event is sent back to the function
        with forwarder(stand_ins.database.host or "127.0.0.1", stand_ins.database.port, port=route_port):
            redrive = ingest.invoke(record)

    # Then the redrive completed the date (as a file arrival: the dead letter is the event itself)
    assert redrive.answer["status"] == "completed", redrive.answer
    assert published(db) == in_file(day)
    assert [(trigger, status) for trigger, status, _, _ in runs(db)] == [("eventbridge_s3", "completed")]
    assert stand_ins.dead_letters() == []


def test_the_four_ways_in_each_sync_their_date_on_one_cold_then_warm_environment(
    template: Template, stand_ins: StandIns, db: pymysql.Connection[Any], tmp_path: Path
) -> None:
    # Given a file for each of five dates (oldest first: each newer date supersedes the last)
    files = {day: upload_day(stand_ins, tmp_path, 500, key=f"passive_upsell_signals/dt={day}/data.parquet", seed=n)
             for n, day in enumerate(("2026-01-26", "2026-01-27", "2026-01-28", "2026-01-29", "2026-01-30"))}
    samples = {name: json.loads((REPO_ROOT / "events" / name).read_text()) for name in ("s3-notification.json", "schedule.json", "lambda-on-failure-record.json")}
    s3_notification = samples["s3-notification.json"]
    s3_notification["Records"][0]["s3"]["bucket"] |= {"name": stand_ins.bucket, "arn": f"arn:aws:s3:::{stand_ins.bucket}"}
    s3_notification["Records"][0]["s3"]["object"]["key"] = "passive_upsell_signals/dt%3D2026-01-26/data.parquet"  # as S3 encodes it
    schedule = samples["schedule.json"] | {"time": "2026-01-29T06:00:00Z"}  # the 06:00 run syncs the day before
    redrive = samples["lambda-on-failure-record.json"]
    redrive["requestPayload"] |= {"time": "2026-01-31T06:00:00Z"}  # Lambda's record of a failed 06:00 run
    events = {
        "s3": s3_notification,
        "eventbridge_s3": file_arrival(stand_ins.bucket, "passive_upsell_signals/dt=2026-01-27/data.parquet"),
        "schedule": schedule,
        "manual": {"sync_date": "2026-01-29"},
        "redrive:schedule": redrive,
    }

    # When each arrives, asynchronously as its trigger invokes, one after the other
    with on_local_lambda(scaled_ingest(template, stand_ins), stand_ins, tmp_path / "ingest.log") as ingest:
        results = []
        for event in events.values():
            results.append(ingest.invoke_async(event))
            ingest.wait_idle(timeout=PATIENCE_SECONDS)
        cold_starts = ingest.cold_starts

    # Then each synced its own date, through the trigger it came by
    for (trigger, _), sync_date, queued in zip(events.items(), files, results, strict=True):
        [_] = queued.results
        assert (queued.answer["status"], queued.answer["sync_date"]) == ("completed", sync_date), queued.answer
        assert [(trigger_source, status) for trigger_source, status, _, _ in runs(db, sync_date)] == [(trigger, "completed")]
    assert published(db) == in_file(files["2026-01-30"])
    # And the first invocation started the environment (with its init duration), the others found it warm
    first, *later = [queued.results[0] for queued in results]
    assert first.cold_start and first.init_duration_ms is not None
    assert [(result.cold_start, result.init_duration_ms) for result in later] == [(False, None)] * 4
    assert cold_starts == 1
    assert stand_ins.dead_letters() == []


def test_a_0600_run_killed_while_it_reconciles_an_older_date_is_finished_by_the_executions_next_invocation(
    template: Template, stand_ins: StandIns, db: pymysql.Connection[Any], tmp_path: Path
) -> None:
    # Given the day's file (2026-01-30) and an older one whose event never came (2026-01-28), each with companies of
    # its own, the older one with a row to reject, and the rejected rows' table locked elsewhere: the day's load
    # rejects nothing, so the run completes it and then blocks recording the older date's reject, as its reconcile
    # stages it (a statement's wait for a table lasts until Lambda's kill)
    days = {"2026-01-30": 1, "2026-01-28": 100_001}
    files = {}
    for seed, (day, first_id) in enumerate(days.items(), start=30):
        files[day] = snowflake_table(3_000, seed=seed, first_id=first_id)
        if day == "2026-01-28":
            files[day] = with_a_product_too_long(files[day], row=5)
        path = write_pyarrow(files[day], tmp_path / f"{day}.parquet")
        stand_ins.s3.upload_file(str(path), stand_ins.bucket, f"passive_upsell_signals/dt={day}/data.parquet")
    schedule = json.loads((REPO_ROOT / "events" / "schedule.json").read_text()) | {"time": "2026-01-31T06:00:00Z"}
    spec = scaled_ingest(template, stand_ins, timeout_seconds=SHORT_TIMEOUT_SECONDS)
    with on_local_lambda(spec, stand_ins, tmp_path / "ingest.log") as ingest:
        with signals_table_locked(stand_ins.database, table="upsell_signal_rejected_rows"):
            # When the 06:00 run syncs its day, starts the reconcile and is killed at its timeout without a word
            event = ingest.invoke_async(schedule)
            wait_until(lambda: event.results, timeout=PATIENCE_SECONDS, what="the run to end")
            assert date_status(db, "2026-01-30") == ("completed", 3_000)
            assert (date_status(db, "2026-01-28") or ("none",))[0] == "started"  # the dead run's claim
        ingest.wait_idle(timeout=PATIENCE_SECONDS)

    # Then the execution's next invocation, a cold start, finished the older date
    killed, *later = event.results
    assert (killed.outcome, killed.payload["errorType"]) == ("timeout", "Sandbox.Timedout")
    assert (later[-1].outcome, later[0].cold_start) == ("success", True)
    assert event.status == "SUCCEEDED", event.answer
    assert [(result["sync_date"], result["status"]) for result in event.answer["results"]][-1] == ("2026-01-28", "completed")
    rejected_company = files["2026-01-28"]["CDMS_CANONICAL_COMPANY_ID"][5].as_py()
    accepted = [row for row in in_file(files["2026-01-28"]) if row[0] != rejected_company]
    assert published(db) == sorted(in_file(files["2026-01-30"]) + accepted)
    assert date_status(db, "2026-01-28") == ("completed", 3_000)
    # And the day the killed run had completed was synced once: the replay found it completed from the same object
    assert [(trigger, status) for trigger, status, _, _ in runs(db, "2026-01-30")] == [("schedule", "completed"), ("schedule", "skipped")]
    assert [(status, error) for _, status, error, _ in runs(db, "2026-01-28")][-1] == ("completed", None)
    assert stand_ins.dead_letters() == []
