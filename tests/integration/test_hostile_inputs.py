"""A catalogue of hostile inputs, each through the real handler (moto S3 and SQS, real MariaDB).

Four tables of named cases, one test each:
- hostile events: answered `failed` (never raised), dead-lettered with the original event and
  a reason naming what arrived, the database untouched;
- hostile files: the date `failed` with a reason naming the problem, the same reason in the
  dead-letter message and in the metadata, the signals table as it was (empty, or holding the
  previous day): nothing half-published;
- hostile values: the date completes, each bad row is a rejected row with its reason, every
  other row equals the file;
- hostile but valid shapes: the date completes and the table equals the file exactly.
"""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import gzip
import io
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pymysql
import pytest
from moto import mock_aws

from functions.ingest import handler as ingest
from functions.ingest.text_checks import ORIGINAL_VALUE_MAX_BYTES
from functions.migrate.files import discover_migrations
from functions.migrate.migrator import Migrator
from functions.shared.db import connect
from functions.shared.settings import DatabaseSettings
from tests.factories import snowflake_table, write_duckdb, write_spark_style
from tests.integration.conftest import expected_rows, query, table_rows
from tests.integration.test_bad_values import with_raw_bytes
from tests.integration.test_handler import BUCKET, Aws, aws_event, sqs_delivery
from tests.integration.test_validation_and_guards import with_values
from tests.scripts_support import LocalContext

DAY_ONE = dt.date(2026, 1, 30)
DAY_TWO = dt.date(2026, 1, 31)
PREFIX = "passive_upsell_signals/"
KEY_TWO = f"{PREFIX}dt=2026-01-31/data.parquet"
KEY = "CDMS_CANONICAL_COMPANY_ID"
ROWS = 200
CHUNK_ROWS = 100  # files of 200-300 rows stage in several chunks: a failure can come mid-file
INGEST_TABLES = (
    "company_upsell_signals",
    "upsell_signal_sync_metadata",
    "upsell_signal_sync_runs",
    "upsell_signal_rejected_rows",
    "upsell_signal_staging",
    "upsell_signal_staging_progress",
)


# -- the stand-ins: one migrated database for the module, emptied before each case ---------


@pytest.fixture(scope="module")
def module_database(server_settings: DatabaseSettings) -> Iterator[DatabaseSettings]:
    """Every migration applied once for the module: creating and migrating a database per case
    costs more than the case itself on a busy two-core machine."""
    settings = replace(server_settings, name=f"test_hostile_{uuid.uuid4().hex[:8]}")
    admin = connect(server_settings, database="")
    try:
        admin.cursor().execute(f"CREATE DATABASE `{settings.name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        migrating = connect(settings)
        try:
            Migrator(migrating, discover_migrations()).up()
        finally:
            migrating.close()
        yield settings
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{settings.name}`")
        admin.close()


@pytest.fixture
def migrated_settings(module_database: DatabaseSettings, monkeypatch: pytest.MonkeyPatch) -> DatabaseSettings:
    """The module's database with every table the ingest writes emptied and no date's staging
    partition left (the migrations ledger stays); DB_NAME points at it."""
    connection = connect(module_database)
    try:
        with connection.cursor() as cursor:
            for table in INGEST_TABLES:
                cursor.execute(f"DELETE FROM {table}")
            cursor.execute(
                "SELECT partition_name FROM information_schema.partitions"
                " WHERE table_schema = %s AND table_name = 'upsell_signal_staging' AND partition_name <> 'p_sentinel'",
                (module_database.name,),
            )
            for (partition,) in cursor.fetchall():
                cursor.execute(f"ALTER TABLE upsell_signal_staging DROP PARTITION `{partition}`")
        connection.commit()
    finally:
        connection.close()
    monkeypatch.setenv("DB_NAME", module_database.name)
    return module_database


@pytest.fixture(scope="module")
def module_aws(module_database: DatabaseSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Aws]:
    """moto S3 with the bucket and SQS with the dead-letter queue, and the handler's app built for
    them once for the module (its settings are the same for every case)."""
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        patch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
        stand_in = Aws(tmp_path_factory.mktemp("hostile_files"))
        # Messages a case read stay visible, so the next case can delete them (PurgeQueue: once a minute).
        stand_in.sqs.set_queue_attributes(QueueUrl=stand_in.queue_url, Attributes={"VisibilityTimeout": "0"})
        for name, value in {
            "DB_NAME": module_database.name,
            "SIGNALS_BUCKET": BUCKET,
            "DEAD_LETTER_QUEUE_URL": stand_in.queue_url,
            "WORK_DIR": str(tmp_path_factory.mktemp("hostile_work")),
            "TRANSIENT_RETRIES": "1",
            "STAGING_CHUNK_ROWS": str(CHUNK_ROWS),
        }.items():
            patch.setenv(name, value)
        ingest.build_app.cache_clear()
        yield stand_in
        ingest.build_app.cache_clear()


@pytest.fixture
def aws(module_aws: Aws, migrated_settings: DatabaseSettings) -> Aws:
    """The module's stand-ins with the bucket and the dead-letter queue emptied."""
    for stored in module_aws.s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        module_aws.s3.delete_object(Bucket=BUCKET, Key=stored["Key"])
    while messages := module_aws.sqs.receive_message(QueueUrl=module_aws.queue_url, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            module_aws.sqs.delete_message(QueueUrl=module_aws.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return module_aws


def invoke(event: Any) -> dict[str, Any]:
    return ingest.handler(event, LocalContext("ingest"))


def parquet_bytes(table: pa.Table, **write_options: Any) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **write_options)
    return sink.getvalue()


def s3_notification(key: str, *, bucket: str = BUCKET, event_name: str = "ObjectCreated:Put") -> dict[str, Any]:
    """The sample notification (events/) for another key, URL-encoded as S3 sends it."""
    event = aws_event("s3-notification.json")
    record = event["Records"][0]
    record["eventName"] = event_name
    record["s3"]["bucket"]["name"] = bucket
    record["s3"]["object"]["key"] = quote(key, safe="/")
    return event


def eventbridge_s3(key: str, *, bucket: str = BUCKET, detail_type: str = "Object Created") -> dict[str, Any]:
    event = aws_event("eventbridge-s3-object-created.json")
    event["detail-type"] = detail_type
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"]["key"] = key
    return event


def on_failure_record(payload: Any) -> dict[str, Any]:
    record = aws_event("lambda-on-failure-record.json")
    record["requestPayload"] = payload
    return record


def without(event: dict[str, Any], *path: str) -> dict[str, Any]:
    """A copy of `event` with the field at `path` removed (a list index as a digit string)."""
    trimmed = copy.deepcopy(event)
    holder: Any = trimmed
    for step in path[:-1]:
        holder = holder[int(step)] if isinstance(holder, list) else holder[step]
    del holder[path[-1]]
    return trimmed


def counts(db: pymysql.Connection[Any]) -> dict[str, int]:
    """Rows in every table the ingest writes (the staging tables included)."""
    return {table: int(query(db, f"SELECT COUNT(*) AS n FROM {table}")[0]["n"]) for table in INGEST_TABLES}


# -- 1. hostile events: refused as BadEvent, dead-lettered, nothing touched ----------------


@dataclass(frozen=True)
class EventCase:
    """An event that must be refused, and the words of the reason that name what arrived."""

    name: str
    event: Any
    says: str


SCHEDULE = aws_event("schedule.json")
HUGE_UNKNOWN_EVENT = {"detail-type": "Something Else", "payload": "x" * 300_000}

EVENT_CASES = [
    EventCase("unknown-shape", {"hello": "world"}, 'unrecognised event: {"hello": "world"}'),
    EventCase("a-json-list", [{"sync_date": "2026-01-31"}], 'not a JSON object): [{"sync_date": "2026-01-31"}]'),
    EventCase("a-json-string", "sync 2026-01-31 please", 'not a JSON object): "sync 2026-01-31 please"'),
    EventCase("json-null", None, "not a JSON object): null"),
    EventCase("a-json-number", 20260131, "not a JSON object): 20260131"),
    EventCase("empty-records-list", {"Records": []}, 'unrecognised event: {"Records": []}'),
    EventCase(
        "s3-key-outside-the-prefix",
        s3_notification("other_prefix/dt=2026-01-31/data.parquet"),
        "key 'other_prefix/dt=2026-01-31/data.parquet' does not match",
    ),
    EventCase(
        "s3-key-with-another-suffix",
        s3_notification(f"{PREFIX}dt=2026-01-31/data.csv"),
        f"key '{PREFIX}dt=2026-01-31/data.csv' does not match",
    ),
    EventCase(
        "s3-key-dt-dot-dot-encoded",
        s3_notification(f"{PREFIX}dt=../../data.parquet"),
        f"key '{PREFIX}dt=../../data.parquet' does not match",
    ),
    EventCase(
        "s3-key-climbing-out-of-the-prefix",
        s3_notification(f"{PREFIX}../secrets/dt=2026-01-31/data.parquet"),
        f"key '{PREFIX}../secrets/dt=2026-01-31/data.parquet' does not match",
    ),
    EventCase(
        "s3-key-impossible-date",
        s3_notification(f"{PREFIX}dt=2026-02-30/data.parquet"),
        "the date in key 'passive_upsell_signals/dt=2026-02-30/data.parquet' '2026-02-30' is not a real date",
    ),
    EventCase(
        "s3-another-bucket",
        s3_notification(KEY_TWO, bucket="someone-elses-bucket"),
        "S3 event for bucket 'someone-elses-bucket', this function reads 'signals-bucket'",
    ),
    EventCase(
        "s3-object-removed",
        s3_notification(KEY_TWO, event_name="ObjectRemoved:Delete"),
        "S3 event 'ObjectRemoved:Delete' is not an object creation",
    ),
    EventCase(
        "s3-record-without-its-s3-part",
        without(s3_notification(KEY_TWO), "Records", "0", "s3"),
        "malformed S3 notification",
    ),
    EventCase(
        "s3-record-whose-key-is-a-number",
        {"Records": [{**s3_notification(KEY_TWO)["Records"][0], "s3": {"bucket": {"name": BUCKET}, "object": {"key": 42}}}]},
        "malformed S3 notification",
    ),
    EventCase(
        "eventbridge-another-bucket",
        eventbridge_s3(KEY_TWO, bucket="someone-elses-bucket"),
        "S3 event for bucket 'someone-elses-bucket'",
    ),
    EventCase(
        "eventbridge-key-outside-the-pattern",
        eventbridge_s3(f"{PREFIX}dt=2026-01-31/part-0001.parquet"),
        f"key '{PREFIX}dt=2026-01-31/part-0001.parquet' does not match",
    ),
    EventCase(
        "eventbridge-another-detail-type",
        eventbridge_s3(KEY_TWO, detail_type="Object Deleted"),
        '"detail-type": "Object Deleted"',
    ),
    EventCase(
        "eventbridge-object-created-without-detail",
        without(eventbridge_s3(KEY_TWO), "detail"),
        "malformed EventBridge S3 event",
    ),
    EventCase("schedule-without-time", without(SCHEDULE, "time"), "malformed Scheduled Event"),
    EventCase("schedule-time-not-iso", {**SCHEDULE, "time": "yesterday"}, "schedule event time 'yesterday' is not an ISO 8601"),
    EventCase("schedule-time-a-number", {**SCHEDULE, "time": 1769839200}, "malformed Scheduled Event"),
    EventCase("schedule-time-year-one", {**SCHEDULE, "time": "0001-01-01T06:00:00Z"}, "malformed Scheduled Event"),
    EventCase("manual-impossible-date", {"sync_date": "2026-13-01"}, "sync_date '2026-13-01' is not a real date"),
    EventCase("manual-date-as-a-number", {"sync_date": 20260131}, "sync_date must be a date as YYYY-MM-DD, got 20260131"),
    EventCase(
        "manual-date-in-fullwidth-digits",
        {"sync_date": "\uff12\uff10\uff12\uff16-01-31"},
        "sync_date '\uff12\uff10\uff12\uff16-01-31' is not a real date",
    ),
    EventCase("manual-unknown-field", {"sync_date": "2026-01-31", "force": True}, '"force": true'),
    EventCase(
        "manual-unknown-guard-name",
        {"sync_date": "2026-01-31", "override_guards": ["row_count"]},
        "unknown guard name(s) in override_guards: ['row_count']; valid names: reject_ratio, row_count_drift, "
        "empty_file, delete_ratio, stale_date, future_date",
    ),
    EventCase(
        "manual-guards-as-a-string",
        {"sync_date": "2026-01-31", "override_guards": "reject_ratio"},
        "override_guards must be a list of guard names, got 'reject_ratio'",
    ),
    EventCase(
        "manual-non-boolean-force",
        {"sync_date": "2026-01-31", "force_resync": "yes"},
        "force_resync must be true or false, got 'yes'",
    ),
    EventCase("manual-dry-run-as-1", {"sync_date": "2026-01-31", "dry_run": 1}, "dry_run must be true or false, got 1"),
    EventCase(
        "manual-s3-key-outside-the-pattern",
        {"s3_key": f"{PREFIX}dt=2026-01-31/../../other/data.parquet"},
        f"key '{PREFIX}dt=2026-01-31/../../other/data.parquet' does not match",
    ),
    EventCase(
        "manual-s3-key-of-another-date",
        {"sync_date": "2026-01-30", "s3_key": KEY_TWO},
        f"s3_key '{KEY_TWO}' is for 2026-01-31, not sync_date 2026-01-30",
    ),
    EventCase("manual-s3-key-not-a-string", {"s3_key": ["a", "b"]}, "s3_key must be a string, got ['a', 'b']"),
    EventCase("sqs-body-not-json", sqs_delivery("{not json"), "SQS message 059f36b4-87a3-44ab-83d2-661975830a7d is not JSON"),
    EventCase("sqs-body-of-unknown-shape", sqs_delivery('{"hello": "world"}'), 'unrecognised event: {"hello": "world"}'),
    EventCase("sqs-body-nested-10000-deep", sqs_delivery("[" * 10_000 + "]" * 10_000), "is nested too deeply to read"),
    EventCase(
        "sqs-body-a-number",
        {"Records": [{**sqs_delivery("{}")["Records"][0], "body": 5}]},
        "SQS message 059f36b4-87a3-44ab-83d2-661975830a7d is not JSON: 5",
    ),
    EventCase("sqs-record-without-body", without(sqs_delivery("{}"), "Records", "0", "body"), "malformed SQS event"),
    EventCase(
        "on-failure-record-with-a-bad-payload", on_failure_record({"hello": "world"}), 'unrecognised event: {"hello": "world"}'
    ),
    EventCase("on-failure-record-with-a-string-payload", on_failure_record("oops"), 'not a JSON object): "oops"'),
    EventCase(
        "dead-letter-message-wrapping-a-dead-letter-message",
        {"original_event": {"original_event": {"sync_date": "2026-01-31"}, "error_type": "BadEvent"}, "error_type": "BadEvent"},
        "unrecognised event",
    ),
    EventCase("a-300-kb-unknown-event", HUGE_UNKNOWN_EVENT, 'unrecognised event: {"detail-type": "Something Else"'),
]


@pytest.mark.parametrize("case", EVENT_CASES, ids=[case.name for case in EVENT_CASES])
def test_a_hostile_event_is_refused_dead_lettered_and_touches_nothing(
    aws: Aws, db: pymysql.Connection[Any], case: EventCase
) -> None:
    # Given a good file for the date, so that only the event can be at fault
    aws.put_file(KEY_TWO, rows=50)

    # When the hostile event arrives
    answer = invoke(case.event)

    # Then it is answered failed (not raised), naming what arrived, in a few hundred characters
    assert (answer["status"], answer["error_type"]) == ("failed", "BadEvent")
    assert case.says in answer["reason"]
    assert len(answer["reason"]) < 1_000
    # and the dead-letter message holds the event as it arrived (cut and marked when huge) and the reason
    [message] = aws.dead_letters()
    assert (message["error_type"], message["error_message"], message["retryable"]) == ("BadEvent", answer["reason"], False)
    if len(json.dumps(case.event)) > 200_000:
        assert message["original_event_truncated"] is True
        assert message["original_event"] == json.dumps(case.event)[:200_000]
    else:
        assert (message["original_event"], message["original_event_truncated"]) == (case.event, False)
    # and nothing was written anywhere
    assert set(counts(db).values()) == {0}


# -- 2. hostile files: the date fails plainly, dead-lettered, nothing half-published ------


@dataclass(frozen=True)
class FileCase:
    """A file that must fail its date: its bytes (None: no file at all), the error and the reason."""

    name: str
    body: Callable[[Path], bytes] | None
    error_type: str
    says: str
    event: dict[str, Any] = field(default_factory=lambda: s3_notification(KEY_TWO))
    needs_previous_day: bool = False


def good_table(rows: int = ROWS, seed: int = 31) -> pa.Table:
    return snowflake_table(rows, seed=seed, first_id=1)


def without_column(name: str) -> Callable[[Path], bytes]:
    return lambda _: parquet_bytes(good_table().drop_columns([name]))


def with_column_as(name: str, values: Callable[[pa.Table], pa.Array]) -> Callable[[Path], bytes]:
    def build(_: Path) -> bytes:
        table = good_table()
        return parquet_bytes(table.set_column(table.schema.get_field_index(name), name, values(table)))

    return build


def corrupt_page_in_the_last_row_group(_: Path) -> bytes:
    """Footer intact, the page header of IS_ACTIVE_CUSTOMER in the third row group (rows 200-299)
    garbled: the file opens, and fails only after two chunks have been read."""
    good = parquet_bytes(good_table(300), row_group_size=100)
    metadata = pq.ParquetFile(io.BytesIO(good)).metadata
    column = metadata.schema.names.index("IS_ACTIVE_CUSTOMER")
    offset = metadata.row_group(2).column(column).data_page_offset
    garbled = bytearray(good)
    garbled[offset + 2 : offset + 10] = bytes(byte ^ 0xFF for byte in garbled[offset + 2 : offset + 10])
    return bytes(garbled)


def column_name_not_utf8(_: Path) -> bytes:
    """A good file plus an extra column whose name a Latin-1 writer stored as b"EXTRA_\\xe9X"."""
    table = good_table()
    raw = parquet_bytes(table.append_column("EXTRA_XX", pa.array(["x"] * table.num_rows)), store_schema=False)
    assert raw.count(b"EXTRA_XX") == 2  # the schema element and the column chunk's path
    return raw.replace(b"EXTRA_XX", b"EXTRA_\xe9X")


def a_bit_flipped_under_a_page_checksum(_: Path) -> bytes:
    """Pages written with their CRC (parquet-mr and pyarrow can), one bit of EE_GROWTH's values flipped after."""
    good = parquet_bytes(good_table(), write_page_checksum=True, compression="none", use_dictionary=False)
    metadata = pq.ParquetFile(io.BytesIO(good)).metadata
    chunk = metadata.row_group(0).column(metadata.schema.names.index("EE_GROWTH"))
    flipped = bytearray(good)
    flipped[chunk.data_page_offset + chunk.total_compressed_size - 3] ^= 0x01
    return bytes(flipped)


def mostly_too_long(_: Path) -> bytes:
    table = good_table()
    return parquet_bytes(
        table.set_column(table.schema.get_field_index("CORE_PRODUCT"), "CORE_PRODUCT", pa.array(["x" * 17] * ROWS))
    )


def every_key_twice(_: Path) -> bytes:
    table = good_table(ROWS // 2)
    return parquet_bytes(pa.concat_tables([table, table]))


NOT_READABLE = "not a readable Parquet file"
FILE_CASES = [
    FileCase("truncated-parquet", lambda _: parquet_bytes(good_table())[:5_000], "CorruptFile", NOT_READABLE),
    FileCase("a-csv-file", lambda _: b"CDMS_CANONICAL_COMPANY_ID,COMPANY_ID\ncdms-1,peo_1\n", "CorruptFile", NOT_READABLE),
    FileCase("zero-bytes", lambda _: b"", "CorruptFile", "not a readable Parquet file: Parquet file size is 0 bytes"),
    FileCase("par1-magic-around-garbage", lambda _: b"PAR1" + b"\x00garbage" * 40 + b"PAR1", "CorruptFile", NOT_READABLE),
    FileCase("gzipped-parquet", lambda _: gzip.compress(parquet_bytes(good_table())), "CorruptFile", NOT_READABLE),
    FileCase(
        "corrupt-page-after-two-chunks",
        corrupt_page_in_the_last_row_group,
        "CorruptFile",
        "Parquet file unreadable at row 200",
    ),
    FileCase(
        "missing-required-column",
        without_column("MODEL_UPDATED_AT"),
        "SchemaError",
        "missing required column(s): MODEL_UPDATED_AT",
    ),
    FileCase("missing-key-column", without_column(KEY), "SchemaError", "missing required column(s): CDMS_CANONICAL_COMPANY_ID"),
    FileCase(
        "no-legacy-id-by-either-name",
        without_column("COMPANY_ID"),
        "SchemaError",
        "missing required column(s): LEGACY_COMPANY_ID or COMPANY_ID",
    ),
    FileCase(
        "two-columns-differing-only-by-case",
        lambda _: parquet_bytes(good_table().append_column("core_product", pa.array(["peo"] * ROWS))),
        "SchemaError",
        "columns 'CORE_PRODUCT' and 'core_product' differ only by case",
    ),
    FileCase(
        "key-column-of-doubles",
        with_column_as(KEY, lambda table: pa.array([float(i) for i in range(ROWS)])),
        "SchemaError",
        "CDMS_CANONICAL_COMPANY_ID has type double, not usable as string",
    ),
    FileCase(
        "timestamps-as-text",
        with_column_as("MODEL_UPDATED_AT", lambda table: pc.cast(table["MODEL_UPDATED_AT"], pa.string())),
        "SchemaError",
        "MODEL_UPDATED_AT has type string, not usable as timestamp",
    ),
    FileCase(
        "a-count-as-a-struct",
        with_column_as("EE_GROWTH", lambda table: pa.array([{"value": i} for i in range(ROWS)])),
        "SchemaError",
        "EE_GROWTH has type struct<value: int64>, not usable as int",
    ),
    FileCase("a-column-name-not-utf8", column_name_not_utf8, "CorruptFile", "a column name is not UTF-8"),
    FileCase(
        "a-page-its-checksum-refutes", a_bit_flipped_under_a_page_checksum, "CorruptFile", "CRC checksum verification failed"
    ),
    FileCase("zero-rows", lambda _: parquet_bytes(good_table().slice(0, 0)), "GuardTripped", "empty_file: the file has no rows"),
    FileCase(
        "every-row-too-long",
        mostly_too_long,
        "GuardTripped",
        # settled at the first chunk's end: the rest is not read
        "reject_ratio: 100 of the file's 200 rows rejected (50.00%) already in its first 100, limit 5.00%; stopped early at row 100",
    ),
    FileCase(
        "every-key-twice",
        every_key_twice,
        "GuardTripped",
        "reject_ratio: 100 of the file's 200 rows rejected (50.00%) already in its first 100, limit 5.00%; stopped early at row 100",
    ),
    FileCase(
        "no-file-for-the-schedule",
        None,
        "MissingObject",
        f"no file at s3://{BUCKET}/{KEY_TWO}",
        event={**SCHEDULE, "time": "2026-02-01T06:00:00Z"},
    ),
    FileCase(
        "half-of-yesterdays-rows",
        lambda _: parquet_bytes(good_table(ROWS // 2)),
        "GuardTripped",
        "row_count_drift: 100 rows against 200 on 2026-01-30 (50.00% drift)",
        needs_previous_day=True,
    ),
]
FILE_RUNS = [
    pytest.param(case, state, id=f"{case.name}-{state}")
    for case in FILE_CASES
    for state in ("empty-table", "previous-day-published")
    if state == "previous-day-published" or not case.needs_previous_day
]


@pytest.mark.parametrize(("case", "state"), FILE_RUNS)
def test_a_hostile_file_fails_its_date_plainly_and_publishes_nothing(
    aws: Aws, db: pymysql.Connection[Any], case: FileCase, state: str
) -> None:
    # Given an empty table, or one holding the previous day's file
    if state == "previous-day-published":
        aws.put_bytes(f"{PREFIX}dt=2026-01-30/data.parquet", parquet_bytes(good_table()))
        assert invoke({"sync_date": "2026-01-30"})["status"] == "completed"
    table_before = table_rows(db)
    # and the hostile file at the next date's key (or none at all)
    if case.body is not None:
        aws.put_bytes(KEY_TWO, case.body(aws.tmp_path))

    # When its event arrives
    answer = invoke(case.event)

    # Then the date is answered failed, with a reason naming the problem
    assert (answer["status"], answer["sync_date"], answer["error_type"]) == ("failed", "2026-01-31", case.error_type)
    assert case.says in answer["reason"]
    assert answer["s3_key"] == KEY_TWO  # the schedule's event names no key: the date's own

    # and the dead-letter message carries the event and the same reason
    [message] = aws.dead_letters()
    assert (message["original_event"], message["error_type"]) == (case.event, case.error_type)
    assert (message["error_message"], message["sync_date"], message["retryable"]) == (answer["reason"], "2026-01-31", False)
    # and the metadata says failed with that reason, the previous day's record untouched
    assert query(db, "SELECT sync_date, status, error_message FROM upsell_signal_sync_metadata ORDER BY sync_date") == [
        *([{"sync_date": DAY_ONE, "status": "completed", "error_message": None}] if table_before else []),
        {"sync_date": DAY_TWO, "status": "failed", "error_message": answer["reason"]},
    ]
    # and not one row of the table changed: nothing half-published
    assert table_rows(db) == table_before
    if table_before:
        assert table_before == expected_rows(good_table())


# -- 3. hostile values: one bad value is one rejected row, the rest loads -----------------


@dataclass(frozen=True)
class ValueCase:
    """A file built from a good one, the rows it must reject with their reasons, and the rest loaded.

    `comparable` turns the file into what expected_rows can read (only where a type needs it);
    `original` is one (row, column, value) to find in the stored original values.
    """

    name: str
    build: Callable[[pa.Table], pa.Table]
    rejected: dict[int, str]
    comparable: Callable[[pa.Table], pa.Table] = lambda table: table
    original: tuple[int, str, Any] | None = None
    write_options: dict[str, Any] = field(default_factory=dict)


def column_as(table: pa.Table, name: str, data_type: pa.DataType) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, pc.cast(table[name], data_type))


def raw_timestamps(table: pa.Table, name: str, unit: str, cells: dict[int, int]) -> pa.Table:
    """Column `name` as timestamps of `unit` with some cells set to raw integers of that unit."""
    values = pc.cast(pc.cast(table[name], pa.timestamp(unit)), pa.int64()).to_pylist()
    for row, raw in cells.items():
        values[row] = raw
    return table.set_column(table.schema.get_field_index(name), name, pa.array(values, pa.int64()).cast(pa.timestamp(unit)))


def fractions(table: pa.Table) -> pa.Table:
    """EE_GROWTH as DECIMAL(38,2) and INITIAL_BILLED_EE_COUNT as float64, each with one fraction and one whole value."""
    table = column_as(column_as(table, "EE_GROWTH", pa.decimal128(38, 2)), "INITIAL_BILLED_EE_COUNT", pa.float64())
    table = with_values(table, 37, EE_GROWTH=decimal.Decimal("3.50"))
    table = with_values(table, 38, EE_GROWTH=decimal.Decimal("7.00"))
    table = with_values(table, 39, INITIAL_BILLED_EE_COUNT=2.5)
    return with_values(table, 40, INITIAL_BILLED_EE_COUNT=8.0)


def a_huge_dictionary_value(table: pa.Table, name: str, rows: tuple[int, ...]) -> pa.Table:
    """Column `name` dictionary-encoded, with one more entry of HUGE_VALUE_BYTES that `rows` point at."""
    values = table[name].to_pylist()
    dictionary = sorted(set(values) - {None})
    huge = len(dictionary)
    indices = [
        huge if row in rows else None if values[row] is None else dictionary.index(values[row]) for row in range(table.num_rows)
    ]
    encoded = pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), pa.array([*dictionary, "h" * HUGE_VALUE_BYTES]))
    return table.set_column(table.schema.get_field_index(name), name, encoded)


def zoned_as(zone: str) -> Callable[[pa.Table], pa.Table]:
    """Every timestamp column's UTC instants under an Arrow zone name the tz database may not know."""

    def build(table: pa.Table) -> pa.Table:
        for index, column in enumerate(table.schema):
            if pa.types.is_timestamp(column.type):
                values = table[column.name].combine_chunks()
                zoned = pa.Array.from_buffers(pa.timestamp(column.type.unit, tz=zone), len(values), values.buffers())
                table = table.set_column(index, column.name, zoned)
        return table

    return build


def naive(table: pa.Table) -> pa.Table:
    for index, column in enumerate(table.schema):
        if pa.types.is_timestamp(column.type):
            table = table.set_column(index, column.name, pc.cast(table[column.name], pa.timestamp(column.type.unit)))
    return table


def decoded(name: str) -> Callable[[pa.Table], pa.Table]:
    return lambda table: table.set_column(table.schema.get_field_index(name), name, pc.cast(table[name], pa.string()))


BIG_VALUE_BYTES = 3 << 20
HUGE_VALUE_BYTES = 5 << 20
NS_WITH_SUB_MICROSECONDS = 1_769_750_000_123_456_789  # 2026-01-30 05:13:20.123456789, loads cut to the second
VALUE_CASES = [
    ValueCase("null-key", lambda t: with_values(t, 3, **{KEY: None}), {3: "blank or missing cdms_canonical_company_id"}),
    ValueCase("blank-key", lambda t: with_values(t, 4, **{KEY: " \t "}), {4: "blank or missing cdms_canonical_company_id"}),
    ValueCase("empty-key", lambda t: with_values(t, 5, **{KEY: ""}), {5: "blank or missing cdms_canonical_company_id"}),
    ValueCase(
        "key-of-65-characters",
        lambda t: with_values(with_values(t, 6, **{KEY: "k" * 65}), 7, **{KEY: "k" * 64}),  # 64 fits
        {6: "cdms_canonical_company_id longer than 64 characters"},
    ),
    ValueCase(
        "invalid-utf8-in-a-string",
        lambda t: with_raw_bytes(t, "COMPANY_ID", {8: b"peo_\xff\xfe8"}),
        {8: "legacy_company_id is not valid UTF-8"},
        original=(8, "legacy_company_id", "peo_\\xff\\xfe8"),
    ),
    ValueCase(
        "invalid-utf8-in-the-key",
        lambda t: with_raw_bytes(t, KEY, {9: b"cdms-\xc3("}),
        {9: "cdms_canonical_company_id is not valid UTF-8"},
    ),
    ValueCase(
        "strings-longer-than-their-columns",
        lambda t: with_values(
            with_values(with_values(t, 10, CORE_PRODUCT="x" * 17), 11, CURRENT_PRODUCT_TIER="é" * 33),
            12,
            CURRENT_PRODUCT_TIER="é" * 32,
        ),
        {10: "core_product longer than 16 characters", 11: "current_product_tier longer than 32 characters"},
    ),
    ValueCase(
        "int-overflow-both-ways",
        lambda t: with_values(t, 13, EE_GROWTH=decimal.Decimal(2**31), COUNT_ICP_MEMBERS_ACTIVE=decimal.Decimal(-(2**31) - 1)),
        {13: "ee_growth outside INT range; count_icp_members_active outside INT range"},
    ),
    ValueCase(
        "int-bounds-load-and-an-int64-overflow",
        lambda t: with_values(with_values(column_as(t, "EE_GROWTH", pa.int64()), 14, EE_GROWTH=2**40), 15, EE_GROWTH=-(2**31)),
        {14: "ee_growth outside INT range"},
    ),
    ValueCase(
        "uint64-count-past-int",
        lambda t: with_values(column_as(t, "INITIAL_BILLED_EE_COUNT", pa.uint64()), 16, INITIAL_BILLED_EE_COUNT=2**64 - 1),
        {16: "initial_billed_ee_count outside INT range"},
    ),
    ValueCase(
        "rate-out-of-range-both-ways",
        lambda t: with_values(with_values(t, 17, EE_GROWTH_RATE=1_000_000.0), 18, EE_GROWTH_RATE=-1_000_000.0),
        {17: "ee_growth_rate outside DECIMAL(10,4)", 18: "ee_growth_rate outside DECIMAL(10,4)"},
    ),
    ValueCase(
        "rate-rounding-past-the-limit",
        lambda t: with_values(with_values(t, 19, EE_GROWTH_RATE=999_999.99995), 20, EE_GROWTH_RATE=999_999.99994),
        {19: "ee_growth_rate outside DECIMAL(10,4)"},  # 999999.99994 loads as 999999.9999
    ),
    ValueCase(
        "nan-and-infinite-rates",
        lambda t: with_values(
            with_values(with_values(t, 21, EE_GROWTH_RATE=float("nan")), 22, EE_GROWTH_RATE=float("inf")),
            23,
            EE_GROWTH_RATE=float("-inf"),
        ),
        {row: "ee_growth_rate outside DECIMAL(10,4)" for row in (21, 22, 23)},
        original=(21, "ee_growth_rate", "nan"),
    ),
    ValueCase(
        "timestamps-past-2038-and-before-1970",
        lambda t: with_values(
            with_values(
                with_values(t, 24, MODEL_UPDATED_AT=dt.datetime(2038, 1, 19, 3, 14, 8)),
                25,
                LAST_HI_APP_STARTED_AT=dt.datetime(1969, 12, 31),
            ),
            26,
            MODEL_UPDATED_AT=dt.datetime(1970, 1, 1),  # MariaDB's zero date
        ),
        {
            24: "model_updated_at outside TIMESTAMP range (1970-01-01 00:00:01 to 2038-01-19 03:14:07 UTC)",
            25: "last_hi_app_started_at outside TIMESTAMP range (1970-01-01 00:00:01 to 2038-01-19 03:14:07 UTC)",
            26: "model_updated_at outside TIMESTAMP range (1970-01-01 00:00:01 to 2038-01-19 03:14:07 UTC)",
        },
    ),
    ValueCase(
        "timestamp-edges-load",
        lambda t: with_values(
            with_values(t, 27, MODEL_UPDATED_AT=dt.datetime(2038, 1, 19, 3, 14, 7)),
            28,
            MODEL_UPDATED_AT=dt.datetime(1970, 1, 1, 0, 0, 1),
        ),
        {},
    ),
    ValueCase(
        "timestamp-past-python-year-9999",
        lambda t: raw_timestamps(t, "MODEL_UPDATED_AT", "ms", {29: 10**16, 30: 2**63 - 1}),
        {row: "model_updated_at outside TIMESTAMP range (1970-01-01 00:00:01 to 2038-01-19 03:14:07 UTC)" for row in (29, 30)},
        original=(30, "model_updated_at", "<value out of range: 9223372036854775807>"),  # Arrow's text for it
    ),
    ValueCase(
        "nanosecond-timestamps-one-before-1970",
        lambda t: raw_timestamps(t, "LAST_HI_APP_STARTED_AT", "ns", {31: 999_999_999, 32: NS_WITH_SUB_MICROSECONDS}),
        {31: "last_hi_app_started_at outside TIMESTAMP range (1970-01-01 00:00:01 to 2038-01-19 03:14:07 UTC)"},
        original=(31, "last_hi_app_started_at", "1970-01-01 00:00:00.999999999"),
        comparable=lambda t: t.set_column(
            t.schema.get_field_index("LAST_HI_APP_STARTED_AT"),
            "LAST_HI_APP_STARTED_AT",
            pc.cast(t["LAST_HI_APP_STARTED_AT"], pa.timestamp("us"), safe=False),
        ),
    ),
    ValueCase(
        "a-long-key-among-timestamps-zoned-as-z",  # "Z": how some writers spell UTC; the tz database has no such zone
        lambda t: with_values(zoned_as("Z")(t), 6, **{KEY: "k" * 65}),
        {6: "cdms_canonical_company_id longer than 64 characters"},
        comparable=naive,
    ),
    ValueCase(
        "snowflake-number-ids",  # NUMBER(38,0) unloads as DECIMAL(38,0)
        lambda t: with_values(t, 7, CORE_PRODUCT="n" * 17).set_column(
            t.schema.get_field_index("COMPANY_ID"),
            "COMPANY_ID",
            pa.array([None if row % 5 == 0 else 10**30 + row for row in range(t.num_rows)], pa.decimal128(38, 0)),
        ),
        {7: "core_product longer than 16 characters"},
        comparable=lambda t: t.set_column(
            t.schema.get_field_index("COMPANY_ID"), "COMPANY_ID", pc.cast(t["COMPANY_ID"], pa.string())
        ),
    ),
    ValueCase(
        "too-long-in-string-view-columns",  # pyarrow keeps the view type in the file's Arrow schema
        lambda t: map_columns_of(
            with_values(t, 41, CORE_PRODUCT="v" * 17), pa.types.is_string, lambda v: pc.cast(v, pa.string_view())
        ),
        {41: "core_product longer than 16 characters"},
        comparable=lambda t: map_columns_of(t, pa.types.is_string_view, lambda v: pc.cast(v, pa.string())),
    ),
    ValueCase(
        "a-key-three-times-across-chunks",
        lambda t: with_values(with_values(t, 150, **{KEY: t[KEY][33].as_py()}), 199, **{KEY: t[KEY][33].as_py()}),
        {row: "cdms_canonical_company_id appears 3 times in the file" for row in (33, 150, 199)},
    ),
    ValueCase(
        "integer-booleans-other-than-0-1",
        lambda t: with_values(
            with_values(column_as(t, "IS_ACTIVE_CUSTOMER", pa.int8()), 34, IS_ACTIVE_CUSTOMER=2), 35, IS_ACTIVE_CUSTOMER=-1
        ),
        {row: "is_active_customer is not a boolean (true/false or 0/1)" for row in (34, 35)},
    ),
    ValueCase(
        "a-3-mb-value",
        lambda t: with_values(t, 36, COMPANY_ID="9" * BIG_VALUE_BYTES),
        {36: "legacy_company_id longer than 64 characters"},
        original=(36, "legacy_company_id", "9" * ORIGINAL_VALUE_MAX_BYTES + f"…[truncated, {BIG_VALUE_BYTES} bytes]"),
    ),
    ValueCase(
        # The page of a dictionary holds a value once, however many rows point at it: a file of
        # kilobytes can decode to gigabytes, which the reader keeps from being copied into each row.
        "a-5-mb-dictionary-value-three-rows-point-at",
        lambda t: a_huge_dictionary_value(t, "CORE_PRODUCT", (42, 43, 44)),
        {row: "core_product longer than 16 characters" for row in (42, 43, 44)},
        original=(43, "core_product", "h" * ORIGINAL_VALUE_MAX_BYTES + f"…[truncated, {HUGE_VALUE_BYTES} bytes]"),
        comparable=decoded("CORE_PRODUCT"),
        write_options={"dictionary_pagesize_limit": 64 << 20},
    ),
    ValueCase(
        "fractions-in-integer-columns",  # whole values only: 3.50 and 2.5 are refused, 7.00 and 8.0 load
        fractions,
        {37: "ee_growth is not a whole number", 39: "initial_billed_ee_count is not a whole number"},
    ),
]


def rejects(db: pymysql.Connection[Any]) -> dict[int, dict[str, Any]]:
    return {row["source_row"]: row for row in query(db, "SELECT * FROM upsell_signal_rejected_rows")}


@pytest.mark.parametrize("case", VALUE_CASES, ids=[case.name for case in VALUE_CASES])
def test_a_hostile_value_is_one_rejected_row_with_its_reason_and_the_rest_loads(
    aws: Aws, db: pymysql.Connection[Any], case: ValueCase
) -> None:
    # Given a good 200-row file with the hostile values written into it
    file_table = case.build(good_table())
    aws.put_bytes(KEY_TWO, parquet_bytes(file_table, **case.write_options))

    # When it is synced
    answer = invoke(s3_notification(KEY_TWO))

    # Then the date completes with exactly the bad rows rejected, each with its reason
    assert (answer["status"], answer["rows_rejected"]) == ("completed", len(case.rejected))
    assert answer["rows_inserted"] == ROWS - len(case.rejected)
    rejected = rejects(db)
    assert {row: rejected[row]["reasons"] for row in rejected} == case.rejected
    if case.original is not None:
        row, column, value = case.original
        assert json.loads(rejected[row]["original_values"])[column] == value
    # and every other row equals the file, nothing dead-lettered
    kept = pa.array([row not in case.rejected for row in range(file_table.num_rows)])
    assert table_rows(db) == expected_rows(case.comparable(file_table).filter(kept))
    assert aws.dead_letters() == []


# -- 4. hostile but valid shapes: the file loads exactly ----------------------------------


@dataclass(frozen=True)
class ShapeCase:
    """A file in an unusual but valid shape; `comparable` is what the table must then equal."""

    name: str
    write: Callable[[pa.Table, Path], bytes]
    comparable: Callable[[pa.Table], pa.Table] = lambda table: table
    build: Callable[[pa.Table], pa.Table] = lambda table: table


def written(**write_options: Any) -> Callable[[pa.Table, Path], bytes]:
    return lambda table, _: parquet_bytes(table, **write_options)


def by_file(writer: Callable[[pa.Table, Path], Path]) -> Callable[[pa.Table, Path], bytes]:
    return lambda table, tmp_path: writer(table, tmp_path / f"{uuid.uuid4().hex}.parquet").read_bytes()


def map_columns_of(table: pa.Table, kind: Callable[[pa.DataType], bool], change: Callable[[pa.ChunkedArray], Any]) -> pa.Table:
    for index, column in enumerate(table.schema):
        if kind(column.type):
            table = table.set_column(index, column.name, change(table[column.name]))
    return table


def renamed(table: pa.Table, names: Callable[[str], str]) -> pa.Table:
    return table.rename_columns([names(name) for name in table.column_names])


def mixed_case(name: str) -> str:
    return "".join(char.upper() if index % 2 else char.lower() for index, char in enumerate(name))


AWKWARD_TEXT = ["\\N", "NULL", "tab\there", "line\nbreak\r\n", "back\\slash", "nul\x00byte", "quote'\"`", "😀" * 16, " padded "]


def awkward_strings(table: pa.Table) -> pa.Table:
    """Values a load file must escape, and 16 four-byte characters (VARCHAR(16) counts characters)."""
    products = table["CORE_PRODUCT"].to_pylist()
    legacy = table["COMPANY_ID"].to_pylist()
    for row, text in enumerate(AWKWARD_TEXT):
        products[row] = text[:16]
        legacy[row] = text
    table = table.set_column(table.schema.get_field_index("CORE_PRODUCT"), "CORE_PRODUCT", pa.array(products))
    return table.set_column(table.schema.get_field_index("COMPANY_ID"), "COMPANY_ID", pa.array(legacy))


def keys_differing_by_case_and_spaces(table: pa.Table) -> pa.Table:
    keys = table[KEY].to_pylist()
    keys[1], keys[2], keys[3] = keys[0].upper(), keys[0] + " ", " " + keys[0]
    return table.set_column(table.schema.get_field_index(KEY), KEY, pa.array(keys))


def zoned(table: pa.Table) -> pa.Table:
    zones = iter(["America/New_York", "+05:30", "UTC", "Asia/Kathmandu"])
    return map_columns_of(
        table, pa.types.is_timestamp, lambda values: pc.assume_timezone(values, "UTC").cast(pa.timestamp("ms", tz=next(zones)))
    )


SHAPE_CASES = [
    ShapeCase("snowflake-decimal-38-0-counts", written()),
    ShapeCase(
        "all-null-column-of-null-type",
        written(),
        build=lambda t: t.set_column(t.schema.get_field_index("DEBUT_PRODUCT_TIER"), "DEBUT_PRODUCT_TIER", pa.nulls(ROWS)),
    ),
    ShapeCase(
        "dictionary-encoded-strings",
        written(),
        build=lambda t: map_columns_of(t, pa.types.is_string, lambda v: v.dictionary_encode()),
    ),
    ShapeCase(
        "large-strings", written(), build=lambda t: map_columns_of(t, pa.types.is_string, lambda v: pc.cast(v, pa.large_string()))
    ),
    ShapeCase(
        "string-views", written(), build=lambda t: map_columns_of(t, pa.types.is_string, lambda v: pc.cast(v, pa.string_view()))
    ),
    ShapeCase(
        "binary-columns-holding-utf8",
        written(),
        build=lambda t: map_columns_of(t, pa.types.is_string, lambda v: pc.cast(v, pa.binary())),
        comparable=lambda t: map_columns_of(t, pa.types.is_binary, lambda v: pc.cast(v, pa.string())),
    ),
    ShapeCase(
        "extra-columns-named-like-the-tables-own",  # ID, CREATED_AT, UPDATED_AT in the file are ignored
        written(),
        build=lambda t: (
            t.append_column("ID", pa.array([7] * ROWS))
            .append_column("UPDATED_AT", t["MODEL_UPDATED_AT"])
            .append_column("comment", pa.array(["x"] * ROWS))
        ),
    ),
    ShapeCase("mixed-case-column-names", written(), build=lambda t: renamed(t, mixed_case)),
    ShapeCase(
        "legacy-company-id-instead-of-company-id",
        written(),
        build=lambda t: renamed(t, lambda n: "LEGACY_COMPANY_ID" if n == "COMPANY_ID" else n),
    ),
    ShapeCase("shuffled-column-order", written(), build=lambda t: t.select(sorted(t.column_names, reverse=True))),
    ShapeCase("zoned-timestamps", written(), build=zoned),
    ShapeCase("int96-timestamps-spark-style", by_file(write_spark_style)),
    ShapeCase("written-by-duckdb", by_file(write_duckdb)),
    ShapeCase("row-groups-of-one-row", written(row_group_size=1)),
    ShapeCase(
        "second-and-nanosecond-timestamps",
        written(),
        build=lambda t: column_as(
            t.set_column(
                t.schema.get_field_index("MODEL_UPDATED_AT"),
                "MODEL_UPDATED_AT",
                pc.cast(t["MODEL_UPDATED_AT"], pa.timestamp("s"), safe=False),
            ),
            "LAST_HI_APP_STARTED_AT",
            pa.timestamp("ns"),
        ),
    ),
    ShapeCase(
        "date-columns-for-timestamps",
        written(),
        build=lambda t: column_as(t, "LAST_REMOTE_EMPLOYEE_INVITED_AT", pa.date32()),
        comparable=lambda t: column_as(t, "LAST_REMOTE_EMPLOYEE_INVITED_AT", pa.timestamp("s")),
    ),
    ShapeCase(
        "narrow-and-unsigned-integer-counts",
        written(),
        build=lambda t: column_as(
            column_as(column_as(t, "COUNT_ICP_MEMBERS_ACTIVE", pa.int16()), "INITIAL_BILLED_EE_COUNT", pa.uint32()),
            "EE_GROWTH",
            pa.int32(),
        ),
    ),
    ShapeCase(
        "float-counts-of-whole-values",
        written(),
        build=lambda t: map_columns_of(t, pa.types.is_decimal, lambda v: pc.cast(v, pa.float64())),
    ),
    ShapeCase(
        "decimal-256-counts",
        written(),
        build=lambda t: map_columns_of(t, pa.types.is_decimal, lambda v: pc.cast(v, pa.decimal256(40, 0))),
    ),
    ShapeCase(
        "decimal-rate-rounded-half-away-from-zero",
        written(),
        build=lambda t: t.set_column(
            t.schema.get_field_index("EE_GROWTH_RATE"),
            "EE_GROWTH_RATE",
            pa.array([decimal.Decimal(f"{(-1) ** i * (i % 7)}.{i:04d}5") for i in range(ROWS)], pa.decimal128(12, 5)),
        ),
    ),
    ShapeCase(
        "integer-booleans", written(), build=lambda t: map_columns_of(t, pa.types.is_boolean, lambda v: pc.cast(v, pa.int8()))
    ),
    ShapeCase(
        "integer-key-column",
        written(),
        build=lambda t: t.set_column(t.schema.get_field_index(KEY), KEY, pa.array(range(10**12, 10**12 + ROWS), pa.int64())),
        comparable=lambda t: column_as(t, KEY, pa.string()),
    ),
    ShapeCase("strings-a-load-file-must-escape", written(), build=awkward_strings),
    ShapeCase("keys-differing-only-by-case-or-spaces", written(), build=keys_differing_by_case_and_spaces),
    ShapeCase("gzip-and-data-page-v2", written(compression="gzip", data_page_version="2.0")),
    ShapeCase("uncompressed-no-dictionary", written(compression="none", use_dictionary=False)),
]


@pytest.mark.parametrize("case", SHAPE_CASES, ids=[case.name for case in SHAPE_CASES])
def test_a_hostile_but_valid_shape_loads_exactly(aws: Aws, db: pymysql.Connection[Any], case: ShapeCase) -> None:
    # Given a file written in this shape
    file_table = case.build(good_table())
    aws.put_bytes(KEY_TWO, case.write(file_table, aws.tmp_path))

    # When it is synced
    answer = invoke(s3_notification(KEY_TWO))

    # Then every row loads, none rejected, and the table equals the file
    assert (answer["status"], answer["rows_inserted"], answer["rows_rejected"]) == ("completed", ROWS, 0)
    assert table_rows(db) == expected_rows(case.comparable(file_table))
    assert aws.dead_letters() == []
