"""The ingest handler fed events as AWS sends them; S3 and SQS from moto, real MariaDB."""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pymysql
import pytest
from moto import mock_aws
from pymysql.constants import CLIENT

from functions.ingest import handler as ingest
from functions.ingest.claim_rules import ClaimRequest
from functions.ingest.continuation import holder_token_of
from functions.ingest.repository import Repository
from functions.ingest.repository import staging as staging_repository
from functions.ingest.repository.ledger import ClaimLedger
from functions.ingest.sync_values import DurableRun, SyncOptions
from functions.migrate.files import discover_migrations
from functions.migrate.migrator import Migrator
from functions.shared.db import connect
from functions.shared.errors import HandedOver, TransientError
from functions.shared.settings import DatabaseSettings
from functions.status.format import format_status
from tests.factories import snowflake_table, write_pyarrow
from tests.integration.conftest import expected_rows, query, table_rows
from tests.integration.test_backfill import rejecting
from tests.lambda_timing import (
    FUNCTION_TIMEOUT_SECONDS,
    PUBLISH_LOCK_WAIT_SECONDS,
    TIME_BUDGET_MARGIN_SECONDS,
    TRANSIENT_RETRIES,
    TRANSIENT_WAIT_SECONDS,
)
from tests.scripts_support import LocalContext

EVENTS = Path(__file__).resolve().parents[2] / "events"
BUCKET = "signals-bucket"
DAY = dt.date(2026, 1, 30)
KEY = "passive_upsell_signals/dt=2026-01-30/data.parquet"


def aws_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


# A run with less time left than the publish lock's wait (a publish that comes late in its run).
SHORT_OF_THE_LOCK_WAIT_SECONDS = TIME_BUDGET_MARGIN_SECONDS + PUBLISH_LOCK_WAIT_SECONDS / 3

class Aws:
    """moto S3 and SQS with the bucket and the dead-letter queue made."""

    def __init__(self, tmp_path: Path) -> None:
        self.s3 = boto3.client("s3", region_name="eu-west-1")
        self.s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        self.sqs = boto3.client("sqs", region_name="eu-west-1")
        self.queue_url = self.sqs.create_queue(QueueName="upsell-signals-dlq")["QueueUrl"]
        self.tmp_path = tmp_path

    def put_file(self, key: str, rows: int = 300, seed: int = 1) -> Any:
        table = snowflake_table(rows, seed=seed)
        self.s3.upload_file(str(write_pyarrow(table, self.tmp_path / f"{seed}.parquet")), BUCKET, key)
        return table

    def put_bytes(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)

    def dead_letters(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(message["Body"]) for message in messages]


@pytest.fixture
def aws(migrated_settings: DatabaseSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        stand_in = Aws(tmp_path)
        for name, value in {
            "SIGNALS_BUCKET": BUCKET,
            "DEAD_LETTER_QUEUE_URL": stand_in.queue_url,
            "WORK_DIR": str(tmp_path),
            "TRANSIENT_RETRIES": "1",
        }.items():
            monkeypatch.setenv(name, value)
        ingest.build_app.cache_clear()
        yield stand_in
        ingest.build_app.cache_clear()


def invoke(event: Any) -> dict[str, Any]:
    return ingest.handler(event, LocalContext("ingest"))


def test_s3_notification_with_an_encoded_key(aws: Aws, db: pymysql.Connection[Any]) -> None:
    table = aws.put_file(KEY)

    answer = invoke(aws_event("s3-notification.json"))

    assert (answer["status"], answer["sync_date"], answer["s3_key"]) == ("completed", "2026-01-30", KEY)
    assert table_rows(db) == expected_rows(table)
    assert query(db, "SELECT trigger_source FROM upsell_signal_sync_runs") == [{"trigger_source": "s3"}]


def test_a_two_record_notification_syncs_both_dates(aws: Aws, db: pymysql.Connection[Any]) -> None:
    event = aws_event("s3-notification.json")
    second = copy.deepcopy(event["Records"][0])
    second["s3"]["object"]["key"] = "passive_upsell_signals/dt%3D2026-01-31/data.parquet"
    event["Records"].append(second)
    aws.put_file(KEY, seed=1)
    aws.put_file("passive_upsell_signals/dt=2026-01-31/data.parquet", seed=1)

    answer = invoke(event)

    assert [(r["sync_date"], r["status"]) for r in answer["results"]] == [
        ("2026-01-30", "completed"),
        ("2026-01-31", "completed"),
    ]


def test_a_bad_record_beside_a_good_one_refuses_only_itself(aws: Aws, db: pymysql.Connection[Any]) -> None:
    # Given a notification whose first record is a daily file and whose second names another bucket
    event = aws_event("s3-notification.json")
    stranger = copy.deepcopy(event["Records"][0])
    stranger["s3"]["bucket"]["name"] = "someone-elses-bucket"
    event["Records"].append(stranger)
    file_table = aws.put_file(KEY, seed=3)

    # When it is handled
    answer = invoke(event)

    # Then the good date is synced, and only the bad record is answered failed and dead-lettered, alone
    assert [(result.get("sync_date"), result["status"]) for result in answer["results"]] == [
        ("2026-01-30", "completed"),
        (None, "failed"),
    ]
    assert answer["status"] == "failed" and "someone-elses-bucket" in answer["results"][1]["reason"]
    assert table_rows(db) == expected_rows(file_table)
    dead_letters = aws.dead_letters()
    assert len(dead_letters) == 1
    assert [record["s3"]["bucket"]["name"] for record in dead_letters[0]["original_event"]["Records"]] == ["someone-elses-bucket"]


def test_eventbridge_object_created(aws: Aws, db: pymysql.Connection[Any]) -> None:
    table = aws.put_file(KEY)

    answer = invoke(aws_event("eventbridge-s3-object-created.json"))

    assert answer["status"] == "completed" and table_rows(db) == expected_rows(table)


def test_schedule_syncs_the_day_before_the_events_own_time_even_when_delivered_late(
    aws: Aws, db: pymysql.Connection[Any]
) -> None:
    # The event says 2026-01-31T06:00Z; it arrives today (much later): the date is still 2026-01-30.
    aws.put_file(KEY)

    first = invoke(aws_event("schedule.json"))
    again = invoke(aws_event("schedule.json"))

    assert (first["status"], first["sync_date"]) == ("completed", "2026-01-30")
    assert again["status"] == "skipped"


def test_schedule_with_no_file_fails_plainly_and_reaches_the_dead_letter_queue(aws: Aws, db: pymysql.Connection[Any]) -> None:
    answer = invoke(aws_event("schedule.json"))

    assert answer["status"] == "failed"
    assert answer["reason"] == f"no file at s3://{BUCKET}/{KEY}"
    [message] = aws.dead_letters()
    assert message["original_event"] == aws_event("schedule.json")
    assert (message["error_type"], message["sync_date"]) == ("MissingObject", "2026-01-30")
    assert query(db, "SELECT status, error_message FROM upsell_signal_sync_metadata") == [
        {"status": "failed", "error_message": f"no file at s3://{BUCKET}/{KEY}"}
    ]


def test_manual_payload_through_the_handler(aws: Aws, db: pymysql.Connection[Any]) -> None:
    aws.put_file(KEY)
    invoke({"sync_date": "2026-01-30"})

    answer = invoke(aws_event("manual-replay.json"))

    assert (answer["status"], answer["rows_unchanged"], answer["attempt"]) == ("completed", 300, 2)


@pytest.mark.parametrize(
    ("event", "says"),
    [
        ({"hello": "world"}, 'unrecognised event: {"hello": "world"}'),
        ({"sync_date": "2026-13-01"}, "is not a real date"),
        ({"s3_key": "passive_upsell_signals/dt=../../x/data.parquet"}, "does not match"),
    ],
)
def test_a_bad_event_is_dead_lettered_not_retried_and_touches_nothing(
    aws: Aws, db: pymysql.Connection[Any], event: dict[str, Any], says: str
) -> None:
    answer = invoke(event)

    assert answer["status"] == "failed" and says in answer["reason"]
    [message] = aws.dead_letters()
    assert message["original_event"] == event and message["error_type"] == "BadEvent" and message["retryable"] is False
    assert message["request_id"].startswith("local-")
    assert query(db, "SELECT COUNT(*) AS n FROM upsell_signal_sync_metadata") == [{"n": 0}]


def test_a_corrupt_file_is_dead_lettered_and_a_redrive_after_the_fix_completes(aws: Aws, db: pymysql.Connection[Any]) -> None:
    aws.put_bytes(KEY, b"PAR1 this is not parquet at all")

    failed = invoke(aws_event("s3-notification.json"))

    [message] = aws.dead_letters()
    assert failed["status"] == "failed" and message["error_type"] == "CorruptFile"
    # The cause in words, the same on the queue, in the answer and in the ledger
    assert message["error_message"].startswith("not a readable Parquet file")
    assert query(db, "SELECT status, error_message FROM upsell_signal_sync_metadata") == [
        {"status": "failed", "error_message": message["error_message"]}
    ]
    assert failed["reason"] == message["error_message"]
    assert table_rows(db) == {}

    # When upstream fixes the file and the operator redrives the message
    table = aws.put_file(KEY, seed=5)
    redriven = invoke(message)

    assert redriven["status"] == "completed" and table_rows(db) == expected_rows(table)
    assert query(db, "SELECT trigger_source FROM upsell_signal_sync_runs ORDER BY id DESC LIMIT 1") == [
        {"trigger_source": "redrive:s3"}
    ]


def test_a_tripped_guard_is_dead_lettered_with_its_name(aws: Aws, db: pymysql.Connection[Any]) -> None:
    aws.put_bytes(KEY, write_pyarrow(snowflake_table(10, seed=2).slice(0, 0), aws.tmp_path / "empty.parquet").read_bytes())

    answer = invoke({"sync_date": "2026-01-30"})

    [message] = aws.dead_letters()
    assert answer["status"] == "failed" and "empty_file" in answer["reason"]
    assert message["error_type"] == "GuardTripped" and message["original_event"] == {"sync_date": "2026-01-30"}
    assert query(db, "SELECT status FROM upsell_signal_sync_metadata") == [{"status": "failed"}]


def sqs_delivery(body: str) -> dict[str, Any]:
    """An SQS event (a redrive queue as the function's event source) carrying `body`."""
    return {
        "Records": [
            {
                "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
                "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1769839541200"},
                "messageAttributes": {},
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:upsell-signals-redrive",
                "awsRegion": "eu-west-1",
            }
        ]
    }


def test_a_bad_message_beside_a_good_one_in_an_sqs_event_refuses_only_itself(aws: Aws, db: pymysql.Connection[Any]) -> None:
    # Given an SQS event of two messages: a replay of a date, and a body that is not JSON
    file_table = aws.put_file(KEY, seed=4)
    [good] = sqs_delivery(json.dumps({"sync_date": "2026-01-30"}))["Records"]
    [bad] = sqs_delivery("sync 2026-01-31 please")["Records"]
    event = {"Records": [good | {"messageId": "good"}, bad | {"messageId": "bad"}]}

    # When it is handled
    answer = invoke(event)

    # Then the good message's date is synced, and only the bad message is answered failed and dead-lettered, alone
    assert [(result.get("sync_date"), result["status"]) for result in answer["results"]] == [
        ("2026-01-30", "completed"),
        (None, "failed"),
    ]
    assert "SQS message bad is not JSON" in answer["results"][1]["reason"]
    assert table_rows(db) == expected_rows(file_table)
    [dead_letter] = aws.dead_letters()
    assert [record["messageId"] for record in dead_letter["original_event"]["Records"]] == ["bad"]


def test_lambda_on_failure_record_and_an_sqs_delivery_are_redriven(aws: Aws, db: pymysql.Connection[Any]) -> None:
    aws.put_file(KEY)
    record = aws_event("lambda-on-failure-record.json")
    sqs_event = sqs_delivery(json.dumps(record))

    direct = invoke(record)
    via_sqs = invoke(sqs_event)

    assert (direct["status"], direct["sync_date"]) == ("completed", "2026-01-30")
    assert via_sqs["status"] == "skipped"
    assert [r["trigger_source"] for r in query(db, "SELECT trigger_source FROM upsell_signal_sync_runs ORDER BY id")] == [
        "redrive:schedule",
        "redrive:schedule",
    ]


def test_a_held_publish_lock_fails_cleanly_as_transient_and_the_next_attempt_resumes(
    aws: Aws, db: pymysql.Connection[Any], migrated_settings: DatabaseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given another session holding the publish lock (a long publish of another date), and the
    # deployed lock wait, in-process retries and function timeout, scaled (tests/lambda_timing.py)
    for name, value in {
        "PUBLISH_LOCK_TIMEOUT_SECONDS": PUBLISH_LOCK_WAIT_SECONDS,
        "TRANSIENT_WAIT_SECONDS": TRANSIENT_WAIT_SECONDS,
        "TRANSIENT_RETRIES": TRANSIENT_RETRIES,
        "TIME_BUDGET_MARGIN_SECONDS": TIME_BUDGET_MARGIN_SECONDS,
    }.items():
        monkeypatch.setenv(name, str(value))
    ingest.build_app.cache_clear()
    table = aws.put_file(KEY, rows=2_000)
    holder = connect(migrated_settings)
    holder.cursor().execute("SELECT GET_LOCK('company_upsell_signals_publish', 0)")

    # When the sync runs, it waits, retries, and then raises for Lambda's own retry, before
    # Lambda's timeout would have killed it (lock wait x tries within the function's timeout)
    started = time.monotonic()
    with pytest.raises(TransientError, match="lock 'company_upsell_signals_publish' still held"):
        ingest.handler({"sync_date": "2026-01-30"}, LocalContext("ingest", timeout_seconds=FUNCTION_TIMEOUT_SECONDS))
    took = time.monotonic() - started
    assert 2 * PUBLISH_LOCK_WAIT_SECONDS <= took < FUNCTION_TIMEOUT_SECONDS - TIME_BUDGET_MARGIN_SECONDS, took
    assert query(db, "SELECT status FROM upsell_signal_sync_metadata") == [{"status": "failed"}]
    assert table_rows(db) == {}

    # Then, once the lock is free, the next attempt syncs the date (the lock comes before the
    # compare and staging, so the failed attempt staged nothing)
    holder.close()
    answer = invoke({"sync_date": "2026-01-30"})
    assert (answer["status"], answer["rows_resumed"]) == ("completed", 0)
    assert table_rows(db) == expected_rows(table)


def short_of_time_behind_the_held_publish_lock(
    settings: DatabaseSettings, monkeypatch: pytest.MonkeyPatch, sync_date: str
) -> float:
    """Sync `sync_date` while another session holds the publish lock, with the deployed lock wait (scaled) and
    less time left than it: the run raises TransientError before its timeout. Returns the seconds it took."""
    monkeypatch.setenv("PUBLISH_LOCK_TIMEOUT_SECONDS", str(PUBLISH_LOCK_WAIT_SECONDS))
    monkeypatch.setenv("TIME_BUDGET_MARGIN_SECONDS", str(TIME_BUDGET_MARGIN_SECONDS))
    ingest.build_app.cache_clear()
    holder = connect(settings)
    holder.cursor().execute("SELECT GET_LOCK('company_upsell_signals_publish', 0)")
    started = time.monotonic()
    try:
        with pytest.raises(TransientError, match="still held"):
            ingest.handler({"sync_date": sync_date}, LocalContext("ingest", timeout_seconds=SHORT_OF_THE_LOCK_WAIT_SECONDS))
    finally:
        holder.close()
    return time.monotonic() - started


def test_a_held_publish_lock_met_with_less_time_left_than_its_wait_fails_before_the_timeout(
    aws: Aws, db: pymysql.Connection[Any], migrated_settings: DatabaseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the publish lock held by another session, the deployed lock wait (scaled), and a run
    # with less time left than that wait (a publish that comes late in its run)
    aws.put_file(KEY, rows=2_000)

    # When the sync reaches its publish
    took = short_of_time_behind_the_held_publish_lock(migrated_settings, monkeypatch, "2026-01-30")

    # Then its wait was cut to the time it had: it failed as transient before Lambda would have killed it
    assert took < SHORT_OF_THE_LOCK_WAIT_SECONDS
    assert query(db, "SELECT status FROM upsell_signal_sync_metadata") == [{"status": "failed"}]


def test_a_sync_that_fails_for_a_passing_reason_says_so_in_a_line_carrying_its_date(
    aws: Aws, migrated_settings: DatabaseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a sync that will fail for a passing reason (the publish lock held past the run's time)
    aws.put_file(KEY, rows=500)
    log_stream = io.StringIO()  # Powertools bound its stream at import; point it here for this test
    previous_stream = ingest.logger.registered_handler.setStream(log_stream)

    # When it raises for Lambda's retry
    try:
        short_of_time_behind_the_held_publish_lock(migrated_settings, monkeypatch, "2026-01-30")
    finally:
        ingest.logger.registered_handler.setStream(previous_stream)

    # Then an operator filtering the logs by the date finds the failure and its reason: the durable
    # SDK's own line about a failed step carries no date
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines() if line.startswith("{")]
    failures = [line for line in lines if line.get("level") == "ERROR"]
    assert len(failures) == 1, failures
    assert failures[0]["sync_date"] == "2026-01-30" and "still held" in failures[0]["message"]


def test_every_log_line_of_a_sync_carries_the_request_id_and_the_date_and_metrics_are_emf(
    aws: Aws, db: pymysql.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    aws.put_file(KEY)
    capsys.readouterr()
    log_stream = io.StringIO()  # Powertools bound its stream at import; point it here for this test
    previous_stream = ingest.logger.registered_handler.setStream(log_stream)
    try:
        invoke({"sync_date": "2026-01-30"})
    finally:
        ingest.logger.registered_handler.setStream(previous_stream)

    output = log_stream.getvalue() + capsys.readouterr().out
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    log_lines = [line for line in lines if "level" in line]
    metric_lines = [line for line in lines if "_aws" in line]
    assert {line["message"].split(",")[0] for line in log_lines} >= {"claimed 2026-01-30", "published", "sync completed"}
    assert all(line["sync_date"] == "2026-01-30" and line["function_request_id"].startswith("local-") for line in log_lines)
    [metrics] = metric_lines
    assert metrics["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "UpsellSignals"
    assert (metrics["SyncCompleted"], metrics["RowsInserted"]) == ([1.0], [300.0])
    assert "password" not in output.lower()


@pytest.fixture
def opened_connections(monkeypatch: pytest.MonkeyPatch) -> list[pymysql.Connection[Any]]:
    """Every connection the handler's app opens, in order (real connections, only recorded)."""
    opened: list[pymysql.Connection[Any]] = []

    def recording_connect(*args: Any, **kwargs: Any) -> pymysql.Connection[Any]:
        connection = connect(*args, **kwargs)
        opened.append(connection)
        return connection

    monkeypatch.setattr(ingest, "connect", recording_connect)
    return opened


def may_load_local_files(connection: pymysql.Connection[Any]) -> bool:
    """Whether the client told the server it may send local files (without it, MariaDB refuses LOAD DATA LOCAL)."""
    return bool(connection.client_flag & CLIENT.LOCAL_FILES)


def test_only_the_staging_connection_may_load_local_files(
    aws: Aws, db: pymysql.Connection[Any], opened_connections: list[pymysql.Connection[Any]]
) -> None:
    # Given a date already synced, so that a re-sync stages, lists its changes alongside and publishes
    aws.put_file(KEY)
    invoke({"sync_date": "2026-01-30"})
    opened_connections.clear()

    # When it is synced again
    answer = invoke({"sync_date": "2026-01-30", "force_resync": True})

    # Then only the staging connection could send files: not the claim's, the listing's or the clean-up's
    assert answer["status"] == "completed"
    assert [may_load_local_files(connection) for connection in opened_connections] == [False, True, False, False]


def test_the_connection_recording_a_failure_may_not_load_local_files(
    aws: Aws, db: pymysql.Connection[Any], opened_connections: list[pymysql.Connection[Any]]
) -> None:
    # Given a file that is not Parquet, When it is synced
    aws.put_bytes(KEY, b"PAR1 this is not parquet at all")
    answer = invoke(aws_event("s3-notification.json"))

    # Then the claim, staging and failure-recording connections: only staging could send files
    assert answer["status"] == "failed"
    assert [may_load_local_files(connection) for connection in opened_connections] == [False, True, False]


# -- the operator's status request -------------------------------------------------


def metadata_and_runs(db: pymysql.Connection[Any]) -> list[list[dict[str, Any]]]:
    return [
        query(db, "SELECT * FROM upsell_signal_sync_metadata ORDER BY id"),
        query(db, "SELECT * FROM upsell_signal_sync_runs ORDER BY id"),
    ]


def test_a_status_request_answers_the_history_and_writes_nothing(aws: Aws, db: pymysql.Connection[Any]) -> None:
    # Given yesterday synced
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    aws.put_file(f"passive_upsell_signals/dt={yesterday}/data.parquet")
    assert invoke({"sync_date": yesterday.isoformat()})["status"] == "completed"
    before = metadata_and_runs(db)

    # When an operator asks for the status
    answer = invoke({"action": "status", "days": 3})

    # Then the answer lists the date as scripts/status shows it, and nothing was claimed or written
    assert (answer["action"], answer["days"], len(answer["syncs"])) == ("status", 3, 1)
    sync = answer["syncs"][0]
    assert (sync["sync_date"], sync["status"], sync["trigger_source"], sync["rows_processed"]) == (
        yesterday.isoformat(),
        "completed",
        "manual",
        300,
    )
    assert sync["progress"] is None and sync["completed_at"].endswith("Z")
    assert metadata_and_runs(db) == before
    assert aws.dead_letters() == []


def test_a_status_request_for_a_date_lists_its_runs_and_first_rejected_rows(aws: Aws, db: pymysql.Connection[Any]) -> None:
    # Given a date synced from a file where one company id appears twice (both copies rejected)
    table = snowflake_table(300, seed=4)
    table = pa.concat_tables([table, table.slice(0, 1)])
    aws.s3.upload_file(str(write_pyarrow(table, aws.tmp_path / "dup.parquet")), BUCKET, KEY)
    assert invoke({"sync_date": "2026-01-30"})["rows_rejected"] == 2

    # When the operator asks for that date, one rejected row at most
    answer = invoke({"action": "status", "sync_date": "2026-01-30", "rejects": 1})

    # Then its run, the count of rejected rows and the first of them are in the answer
    assert [(run["attempt"], run["status"], run["force_resync"]) for run in answer["runs"]] == [(1, "completed", False)]
    assert (answer["rejects_total"], len(answer["rejects"]), answer["progress"]) == (2, 1, None)
    assert "appears 2 times in the file" in answer["rejects"][0]["reasons"]


def test_a_date_being_staged_shows_rows_read_of_rows_in_the_file_and_an_estimate(
    aws: Aws, db: pymysql.Connection[Any], migrated_settings: DatabaseSettings
) -> None:
    # Given a date claimed 10 s ago whose staging pass has read 1,000 of the file's 4,000 rows
    repository = Repository(connect(migrated_settings))
    request = ClaimRequest(
        sync_date=DAY,
        s3_key=KEY,
        etag="etag-1",
        invocation_id="req-1",
        holder_token="a" * 32,
        trigger="manual",
        force_resync=False,
        dry_run=False,
    )
    try:
        with repository.transaction("claim"):
            assert repository.ledger.claim(request, lease_seconds=900).kind == "claimed"
        repository.staging.start_staging(DAY, "etag-1", 1, request.holder_token)
        with repository.transaction("stage"):
            repository.staging.record_rows_in_file(DAY, "etag-1", 4_000)
            repository.staging.advance_progress(DAY, "etag-1", from_row=0, to_row=1_000, staged=990, rejected=10)
    finally:
        repository.connection.close()
    db.cursor().execute("UPDATE upsell_signal_sync_metadata SET started_at = NOW() - INTERVAL 10 SECOND")

    # When the operator asks for that date
    progress = invoke({"action": "status", "sync_date": DAY.isoformat()})["progress"]

    # Then it is staging, 1,000 of 4,000 rows read, and about three times the elapsed time is left
    assert (progress["phase"], progress["rows_read"], progress["rows_in_file"], progress["rows_staged"]) == (
        "staging",
        1_000,
        4_000,
        990,
    )
    assert 10 <= progress["elapsed_seconds"] <= 15
    assert progress["staging_seconds_left"] == 3 * progress["elapsed_seconds"]


def test_an_unknown_action_is_refused_by_name(aws: Aws, db: pymysql.Connection[Any]) -> None:
    answer = invoke({"action": "purge"})

    assert answer["status"] == "failed" and answer["error_type"] == "BadEvent"
    assert answer["reason"].startswith("unknown action 'purge': the ingest answers 'status'")
    assert query(db, "SELECT COUNT(*) AS runs FROM upsell_signal_sync_runs") == [{"runs": 0}]


def test_a_correction_three_days_back_whose_event_never_arrived_is_synced_by_the_next_daily_run(
    aws: Aws, db: pymysql.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    # Given 2026-01-27 synced, then corrected in S3 with no event (Lambda dropped it), 2026-01-28's
    # file whose event never came either, no file for 2026-01-29, and 2026-01-30's file
    files = {day: snowflake_table(300, seed=day, first_id=1 + (day - 27) * 300) for day in (27, 28, 30)}
    for day, table in files.items():
        aws.s3.upload_file(str(write_pyarrow(table, aws.tmp_path / f"{day}.parquet")), BUCKET, key_for(day))
    assert invoke({"sync_date": "2026-01-27"})["status"] == "completed"
    files[27] = snowflake_table(300, seed=127, first_id=1)
    aws.s3.upload_file(str(write_pyarrow(files[27], aws.tmp_path / "27-corrected.parquet")), BUCKET, key_for(27))

    # When the 06:00 run of 2026-01-31 comes
    with caplog.at_level("INFO", logger="upsell_signals"):
        answer = invoke(aws_event("schedule.json"))

    # Then it syncs 2026-01-30, and the two recent dates whose object differs from what completed
    assert [(result["sync_date"], result["status"], result.get("rows_inserted")) for result in answer["results"]] == [
        ("2026-01-30", "completed", 300),
        ("2026-01-27", "completed", 0),
        ("2026-01-28", "completed", 300),
    ]
    assert table_rows(db) == {key: row for day in sorted(files) for key, row in expected_rows(files[day]).items()}
    ledger = query(db, "SELECT sync_date, status, trigger_source FROM upsell_signal_sync_metadata ORDER BY sync_date")
    assert [(str(row["sync_date"]), row["status"], row["trigger_source"]) for row in ledger] == [
        ("2026-01-27", "completed", "reconcile"),
        ("2026-01-28", "completed", "reconcile"),
        ("2026-01-30", "completed", "schedule"),
    ]
    # And what it found is logged with why, and nothing reached the dead-letter queue
    [found] = [record for record in caplog.records if record.getMessage().startswith("reconciled 2026-01-23 to 2026-01-29")]
    assert found.getMessage().endswith("2 of 7 dates to sync")
    assert "changed since it completed" in found.__dict__["dates_to_reconcile"]["2026-01-27"]
    assert "never synced" in found.__dict__["dates_to_reconcile"]["2026-01-28"]
    assert aws.dead_letters() == []
    # And the next morning's run finds nothing more to do
    assert invoke(aws_event("schedule.json"))["status"] == "skipped"


def put_day(aws: Aws, day: int, seed: int | None = None) -> pa.Table:
    """A 300-row file for 2026-01-`day` (companies of their own per day), uploaded; the table."""
    table = snowflake_table(300, seed=seed or day, first_id=1 + (day - 20) * 300)
    aws.s3.upload_file(str(write_pyarrow(table, aws.tmp_path / f"{day}-{seed}.parquet")), BUCKET, key_for(day))
    return table


class ShortOfTimeOnceTheDateStaged(LocalContext):  # type: ignore[misc, valid-type]
    """Fifteen minutes left until `sync_date` has committed a staging chunk, then less than the 30 s margin.

    `once_staged` runs once, when the first committed chunk is seen.
    """

    def __init__(self, db: pymysql.Connection[Any], sync_date: str, once_staged: Callable[[], None] | None = None) -> None:
        super().__init__("ingest")
        self.db, self.sync_date, self.once_staged = db, sync_date, once_staged

    def get_remaining_time_in_millis(self) -> int:
        self.db.commit()  # a fresh snapshot
        progress = query(self.db, "SELECT rows_read FROM upsell_signal_staging_progress WHERE sync_date = %s", (self.sync_date,))
        if not (progress and progress[0]["rows_read"]):
            return 900_000
        if self.once_staged is not None:
            self.once_staged, then = None, self.once_staged
            then()
        return 29_000


def test_a_reconciled_date_its_own_execution_left_held_is_resumed_by_the_executions_next_run(
    aws: Aws, db: pymysql.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 2026-01-30's file, and 2026-01-28's whose event never came, staged 100 rows a chunk
    monkeypatch.setenv("STAGING_CHUNK_ROWS", "100")
    ingest.build_app.cache_clear()
    files = {day: put_day(aws, day) for day in (28, 30)}
    execution = "arn:aws:lambda:eu-west-1:123456789012:function:upsell-signals-sync-dev:3/durable-execution/daily/a1"
    token = holder_token_of(execution)

    # And run 1 of the 06:00 durable execution: 2026-01-30 completes, the reconciled 2026-01-28 hands
    # over, and the database connection is cut (killed from another session) before the hand-over is recorded
    def cut_then_hand_over(ledger: ClaimLedger, *args: Any, **kwargs: Any) -> Any:
        with db.cursor() as cursor:
            cursor.execute("KILL CONNECTION %s", (ledger.session.connection.thread_id(),))
        return real_hand_over(ledger, *args, **kwargs)

    real_hand_over = ClaimLedger.hand_over
    monkeypatch.setattr(ClaimLedger, "hand_over", cut_then_hand_over)
    with pytest.raises(HandedOver):
        ingest.handler(aws_event("schedule.json"), ShortOfTimeOnceTheDateStaged(db, "2026-01-28"), DurableRun(holder_token=token, execution_arn=execution, number=1))
    monkeypatch.setattr(ClaimLedger, "hand_over", real_hand_over)
    [held] = query(db, "SELECT status, holder_token, lease_expires_at > NOW() AS live FROM upsell_signal_sync_metadata WHERE sync_date = '2026-01-28'")
    assert (held["status"], held["holder_token"], held["live"]) == ("started", token, 1)

    # When the execution's next run comes, within the lease
    answer = ingest.handler(aws_event("schedule.json"), LocalContext("ingest"), DurableRun(holder_token=token, execution_arn=execution, number=2))

    # Then it resumes its own claim on 2026-01-28 and completes it, rather than leave it to the next morning
    assert [(result["sync_date"], result["status"]) for result in answer["results"]] == [
        ("2026-01-30", "skipped"),
        ("2026-01-28", "completed"),
    ]
    assert answer["results"][1]["rows_resumed"] > 0
    assert table_rows(db) == {**expected_rows(files[28]), **expected_rows(files[30])}


def test_the_redrive_of_a_reconciled_dates_dead_letter_is_the_reconciles_not_a_persons_replay(
    aws: Aws, db: pymysql.Connection[Any]
) -> None:
    # Given 2026-01-30 synced by the 06:00 run, whose reconcile of 2026-01-28 (a dropped event) met a corrupt file
    files = {30: put_day(aws, 30)}
    aws.put_bytes(key_for(28), b"PAR1 this is not parquet PAR1")
    answer = invoke(aws_event("schedule.json"))
    assert [(result["sync_date"], result["status"]) for result in answer["results"]] == [("2026-01-30", "completed"), ("2026-01-28", "failed")]
    [dead_letter] = aws.dead_letters()
    assert dead_letter["trigger"] == "reconcile"

    # When the file is fixed and the operator redrives the dead letter as it is
    files[28] = put_day(aws, 28)
    redriven = invoke(dead_letter)

    # Then it syncs 2026-01-28 as the reconcile would have: stale_date, which stops only a person's
    # replay of a date older than a published one, does not stop it
    assert (redriven["status"], redriven["sync_date"]) == ("completed", "2026-01-28"), redriven
    assert table_rows(db) == {**expected_rows(files[28]), **expected_rows(files[30])}
    [run] = query(db, "SELECT trigger_source FROM upsell_signal_sync_runs WHERE sync_date = '2026-01-28' AND status = 'completed'")
    assert run["trigger_source"] == "redrive:reconcile"


def test_a_date_that_failed_for_a_passing_reason_is_synced_by_the_next_daily_run_and_a_bad_file_is_not(
    aws: Aws, db: pymysql.Connection[Any], migrated_settings: DatabaseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 2026-01-30 synced, 2026-01-27's corrupt file failed on its arrival (permanent), and
    # 2026-01-28's sync failed because another session held the publish lock through every retry (transient)
    monkeypatch.setenv("PUBLISH_LOCK_TIMEOUT_SECONDS", "1")
    ingest.build_app.cache_clear()
    files = {day: put_day(aws, day) for day in (28, 30)}
    aws.put_bytes(key_for(27), b"PAR1 this is not parquet PAR1")
    assert invoke({"sync_date": "2026-01-30"})["status"] == "completed"
    arrival = aws_event("eventbridge-s3-object-created.json")
    arrival["detail"]["object"]["key"] = key_for(27)
    assert invoke(arrival)["error_type"] == "CorruptFile"
    holder = connect(migrated_settings)
    holder.cursor().execute("SELECT GET_LOCK('company_upsell_signals_publish', 0)")
    with pytest.raises(TransientError, match="still held"):
        invoke({"sync_date": "2026-01-28", "override_guards": ["stale_date"]})
    holder.close()

    # When the 06:00 run of 2026-01-31 comes, the lock long free
    answer = invoke(aws_event("schedule.json"))

    # Then it syncs 2026-01-28, which never completed; the corrupt file, unchanged, is left to its dead letter
    assert [(result["sync_date"], result["status"]) for result in answer["results"]] == [
        ("2026-01-30", "skipped"),
        ("2026-01-28", "completed"),
    ]
    ledger = query(db, "SELECT sync_date, status FROM upsell_signal_sync_metadata ORDER BY sync_date")
    assert [(str(row["sync_date"]), row["status"]) for row in ledger] == [
        ("2026-01-27", "failed"),
        ("2026-01-28", "completed"),
        ("2026-01-30", "completed"),
    ]
    assert table_rows(db) == {**expected_rows(files[28]), **expected_rows(files[30])}


def test_a_first_load_a_guard_refuses_keeps_its_rejected_rows_on_record(aws: Aws, db: pymysql.Connection[Any]) -> None:
    # Given an empty table, and a file of 300 rows, 30 of them invalid (10%, over reject_ratio's 5%)
    table = rejecting(snowflake_table(300, seed=8), list(range(30)))
    aws.s3.upload_file(str(write_pyarrow(table, aws.tmp_path / "bad.parquet")), BUCKET, KEY)

    # When it syncs (straight into the empty table, in one transaction)
    answer = invoke({"sync_date": "2026-01-30"})

    # Then the guard refuses it and nothing is published, but its rejected rows stay on record, each with its reason
    assert (answer["status"], answer["error_type"]) == ("failed", "GuardTripped") and "reject_ratio" in answer["reason"]
    assert table_rows(db) == {}
    status = invoke({"action": "status", "sync_date": "2026-01-30", "rejects": 50})
    assert status["rejects_total"] == 30
    assert [reject["source_row"] for reject in status["rejects"]] == list(range(30))
    assert all("core_product" in reject["reasons"] for reject in status["rejects"])


def a_day_two_handed_over_by_run_1(
    aws: Aws, db: pymysql.Connection[Any], monkeypatch: pytest.MonkeyPatch, day: int = 30, **context: Any
) -> str:
    """The day before published, then run 1 of a durable execution hands 2026-01-`day` over after a chunk; its ARN."""
    monkeypatch.setenv("STAGING_CHUNK_ROWS", "100")
    ingest.build_app.cache_clear()
    put_day(aws, day - 1)
    assert invoke({"sync_date": f"2026-01-{day - 1:02d}"})["status"] == "completed"
    put_day(aws, day)
    sync_date = f"2026-01-{day:02d}"
    execution = f"arn:aws:lambda:eu-west-1:123456789012:function:upsell-signals-sync-dev:3/durable-execution/{sync_date}/b2"
    run_1 = DurableRun(holder_token=holder_token_of(execution), execution_arn=execution, number=1)
    with pytest.raises(HandedOver):
        ingest.handler({"sync_date": sync_date}, ShortOfTimeOnceTheDateStaged(db, sync_date, **context), run_1)
    return execution


def test_a_hand_over_no_run_follows_reads_stalled_once_the_next_run_is_overdue(
    aws: Aws, db: pymysql.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given run 1 of an execution handed a date over
    a_day_two_handed_over_by_run_1(aws, db, monkeypatch)
    assert invoke({"action": "status", "sync_date": "2026-01-30"})["progress"]["phase"] == "handed_over"

    # When the execution was stopped in its pause, and no run has claimed the date for longer than the
    # pause and a minute (the clock moved on: the lease's lapse moved back by as much)
    with db.cursor() as cursor:
        cursor.execute("UPDATE upsell_signal_sync_metadata SET lease_expires_at = lease_expires_at - INTERVAL 66 SECOND")
    db.commit()
    progress = invoke({"action": "status", "sync_date": "2026-01-30"})["progress"]

    # Then the status no longer promises the next run: the date is stalled, that run overdue, and says how to tell why
    assert (progress["phase"], progress["next_run_overdue"]) == ("stalled", True)
    shown = format_status(invoke({"action": "status", "sync_date": "2026-01-30"}))
    assert "resumes after its pause" not in shown
    assert "run 2 is overdue: throttled, or its execution was stopped (aws lambda get-durable-execution" in shown


def test_a_duplicate_answered_in_progress_does_not_hide_the_holders_hand_over(
    aws: Aws, db: pymysql.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given run 1 of an execution staging a date, met once by a duplicate delivery (answered in_progress), then handing over
    answers: list[str] = []

    def duplicate() -> None:
        request = SyncOptions(invocation_id="duplicate", trigger="eventbridge_s3")
        answers.append(ingest.build_app().service.sync(dt.date(2026, 1, 30), None, request).status)

    a_day_two_handed_over_by_run_1(aws, db, monkeypatch, once_staged=duplicate)
    assert answers == ["in_progress"]

    # When the operator asks for the date
    progress = invoke({"action": "status", "sync_date": "2026-01-30"})["progress"]

    # Then it reads handed over by run 1, not stalled: the duplicate's answer is not the holder's run
    assert (progress["phase"], progress["durable_run"]) == ("handed_over", 1)


def test_a_reconciled_date_that_fails_does_not_keep_the_next_ones_waiting(
    aws: Aws, db: pymysql.Connection[Any], migrated_settings: DatabaseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 2026-01-30's file, and two older dates whose events never came, 2026-01-27 and 2026-01-28;
    # and another session holding 2026-01-27's staging lock (its partition's DDL), a wait of a second
    monkeypatch.setattr(staging_repository, "STAGING_LOCK_TIMEOUT_SECONDS", 1)
    files = {day: put_day(aws, day) for day in (27, 28, 30)}
    holder = connect(migrated_settings)
    holder.cursor().execute("SELECT GET_LOCK('upsell_signal_staging:2026-01-27', 0)")

    # When the 06:00 run comes
    with pytest.raises(TransientError, match="2026-01-27"):
        invoke(aws_event("schedule.json"))

    # Then 2026-01-28 was synced all the same, after 2026-01-27 failed; the run raised for Lambda's retry
    ledger = {str(row["sync_date"]): row["status"] for row in query(db, "SELECT sync_date, status FROM upsell_signal_sync_metadata")}
    assert ledger == {"2026-01-27": "failed", "2026-01-28": "completed", "2026-01-30": "completed"}

    # And Lambda's retry of the morning's event, the lock free, syncs 2026-01-27: it failed for a passing reason
    holder.close()
    answer = invoke(aws_event("schedule.json"))
    assert [(result["sync_date"], result["status"]) for result in answer["results"]] == [
        ("2026-01-30", "skipped"),
        ("2026-01-27", "completed"),
    ]
    assert table_rows(db) == {key: row for day in (27, 28, 30) for key, row in expected_rows(files[day]).items()}


def test_a_date_whose_execution_stopped_for_no_progress_is_left_to_its_dead_letter_by_the_daily_run(
    aws: Aws, db: pymysql.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 2026-01-28 handed over by run 1 of its execution, which then stopped for no progress
    # (the date recorded failed, with no failed run: the runs handed over)
    execution = a_day_two_handed_over_by_run_1(aws, db, monkeypatch, day=28)
    assert ingest.fail_dates_held_by(holder_token_of(execution), "no progress: run 2 handed over where run 1 did") == 1
    put_day(aws, 30)

    # When the 06:00 run comes
    answer = invoke(aws_event("schedule.json"))

    # Then it syncs its own date only: the stopped date waits for a person, with its dead letter
    assert (answer["sync_date"], answer["status"]) == ("2026-01-30", "completed")
    [stopped] = query(db, "SELECT status, error_message FROM upsell_signal_sync_metadata WHERE sync_date = '2026-01-28'")
    assert stopped["status"] == "failed" and stopped["error_message"].startswith("no progress")


def test_a_repeated_arrival_and_the_daily_run_leave_a_date_that_failed_for_good_to_its_one_dead_letter(
    aws: Aws, db: pymysql.Connection[Any]
) -> None:
    # Given 2026-01-29 published with 1,000 companies, and 2026-01-30's file of 500 arriving, which
    # row_count_drift refuses (a permanent failure: the same file would fail again)
    day_before = aws.put_file(key_for(29), rows=1_000, seed=5)
    assert invoke({"sync_date": "2026-01-29"})["status"] == "completed"
    table = aws.put_file(KEY, rows=500, seed=6)
    arrival = aws_event("eventbridge-s3-object-created.json")
    assert invoke(arrival)["error_type"] == "GuardTripped"

    # When EventBridge delivers the arrival again, and the 06:00 run looks for the date's file
    again = invoke(arrival)
    daily = invoke(aws_event("schedule.json"))

    # Then neither syncs it again: both answer skipped saying why, and the one dead letter stays the only one
    for answer in (again, daily):
        assert answer["status"] == "skipped" and "retrying cannot fix" in answer["reason"], answer
        assert "GuardTripped" in answer["reason"]
    assert len(aws.dead_letters()) == 1
    # And a person's replay with the guard overridden still runs it
    replay = invoke({"sync_date": "2026-01-30", "override_guards": ["row_count_drift"]})
    assert replay["status"] == "completed"
    assert table_rows(db) == {**expected_rows(day_before), **expected_rows(table)}


def key_for(day: int) -> str:
    return f"passive_upsell_signals/dt=2026-01-{day:02d}/data.parquet"


def test_the_status_of_a_date_shows_the_rejects_of_its_latest_file_not_an_earlier_ones(aws: Aws, db: pymysql.Connection[Any]) -> None:
    # Given a date synced from a file with a repeated key (2 rejected rows), then from a
    # corrected re-export with no bad row
    table = snowflake_table(300, seed=4)
    aws.s3.upload_file(str(write_pyarrow(pa.concat_tables([table, table.slice(0, 1)]), aws.tmp_path / "dup.parquet")), BUCKET, KEY)
    assert invoke({"sync_date": "2026-01-30"})["rows_rejected"] == 2
    shown_then = invoke({"action": "status", "sync_date": "2026-01-30"})
    aws.s3.upload_file(str(write_pyarrow(table, aws.tmp_path / "fixed.parquet")), BUCKET, KEY)
    assert (invoke({"sync_date": "2026-01-30"})["rows_rejected"]) == 0

    # When the operator asks for the date
    shown_now = invoke({"action": "status", "sync_date": "2026-01-30"})

    # Then it showed the 2 rejects while they were the date's, and none now; the rows stay recorded
    assert shown_then["rejects_total"] == 2 and len(shown_then["rejects"]) == 2
    assert (shown_now["rejects_total"], shown_now["rejects"]) == (0, [])
    assert query(db, "SELECT COUNT(*) AS n FROM upsell_signal_rejected_rows")[0]["n"] == 2


def test_no_log_line_of_a_sync_carries_the_database_password(
    aws: Aws,
    migrated_settings: DatabaseSettings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given the ingest account with a password of its own, as the migrate function provisions it
    # (the suite's admin has an empty password, so `"password" not in output` proves nothing)
    password = f"pw-{uuid.uuid4().hex}"
    admin = connect(migrated_settings)
    Migrator(admin, discover_migrations()).provision_ingest_user("upsell_ingest", password)
    admin.close()
    monkeypatch.setenv("DB_USER", "upsell_ingest")
    monkeypatch.setenv("DB_PASSWORD", password)
    ingest.build_app.cache_clear()
    aws.put_file(KEY)
    capsys.readouterr()
    log_stream = io.StringIO()
    previous_stream = ingest.logger.registered_handler.setStream(log_stream)
    # When a date syncs, and another fails for a passing reason (its publish lock held past the run's
    # time: the failure is logged with its traceback), every logger listened to down to DEBUG
    aws.put_file("passive_upsell_signals/dt=2026-01-31/data.parquet", seed=2)
    try:
        with caplog.at_level("DEBUG"):
            answer = invoke({"sync_date": "2026-01-30"})
            short_of_time_behind_the_held_publish_lock(migrated_settings, monkeypatch, "2026-01-31")
    finally:
        ingest.logger.registered_handler.setStream(previous_stream)
    # Then the first completed, and the password is in no line either wrote
    assert answer["status"] == "completed"
    captured = capsys.readouterr()
    output = log_stream.getvalue() + captured.out + captured.err + caplog.text
    assert "claimed 2026-01-30" in output and "sync failed, for Lambda to retry" in output
    assert password not in output


def test_a_correction_whose_event_was_lost_is_reconciled_after_a_persons_replay_of_it_met_stale_date(
    aws: Aws, db: pymysql.Connection[Any]
) -> None:
    # Given 2026-01-28 then 2026-01-30 published
    put_day(aws, 28)
    files = {30: put_day(aws, 30)}
    assert invoke({"sync_date": "2026-01-28"})["status"] == "completed"
    assert invoke({"sync_date": "2026-01-30"})["status"] == "completed"
    # And a corrected 2026-01-28 whose S3 event Lambda dropped
    files[28] = put_day(aws, 28, seed=99)
    # And a person's replay of 2026-01-28 without an override, refused by stale_date (a guard only a replay meets)
    replay = invoke({"sync_date": "2026-01-28"})
    assert (replay["status"], replay["error_type"]) == ("failed", "GuardTripped") and "stale_date" in replay["reason"]

    # When the 06:00 run comes, whose reconcile stands in for the lost arrival
    answer = invoke(aws_event("schedule.json"))

    # Then it syncs 2026-01-28 as the arrival would have (a failure only a replay met holds no arrival
    # back: the claim's rule and the reconcile's are one), and the correction is published
    results = answer.get("results", [answer])
    assert ("2026-01-28", "completed") in [(result["sync_date"], result["status"]) for result in results], results
    assert table_rows(db) == {**expected_rows(files[28]), **expected_rows(files[30])}
