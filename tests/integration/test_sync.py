"""One date's sync against real MariaDB and moto S3: the table equals the file, counts are exact."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pymysql
import pytest

from functions.ingest.repository import signals  # the publish's SQL and its tuning constants
from functions.ingest.repository.names import CHANGES
from functions.ingest.repository.signals import PublishPlan, SignalsTable
from functions.shared.errors import CorruptFile, GuardTripped, MissingObject, SchemaError
from tests.factories import day_two, snowflake_table, write_duckdb, write_pyarrow, write_spark_style
from tests.integration.conftest import expected_rows, query, table_rows

DAY_ONE = dt.date(2026, 1, 30)
DAY_TWO = dt.date(2026, 1, 31)


def record_publish_list_engine(monkeypatch: pytest.MonkeyPatch, list_in: str) -> list[str]:
    """Keep the publish list in `list_in` ("memory" or "innodb"); returns the engines each plan used."""
    monkeypatch.setattr(signals, "PLAN_IN_MEMORY_MAX_ROWS", 10_000_000 if list_in == "memory" else 0)
    engines: list[str] = []
    plan_publish = SignalsTable.plan_publish

    def plan_and_record(self: SignalsTable, *args: Any, **kwargs: Any) -> PublishPlan:
        plan = plan_publish(self, *args, **kwargs)
        with self.connection.cursor() as cursor:
            cursor.execute(f"SHOW CREATE TABLE {CHANGES}")
            definition = cursor.fetchone()[1]
        engines.append(definition.split("ENGINE=")[1].split()[0].lower())
        return plan

    monkeypatch.setattr(SignalsTable, "plan_publish", plan_and_record)
    return engines


@pytest.mark.parametrize("load_method", ["local_infile", "insert"])
@pytest.mark.parametrize("writer", [write_pyarrow, write_duckdb, write_spark_style], ids=["pyarrow", "duckdb", "spark"])
def test_first_load_table_equals_the_file(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any], writer: Any, load_method: str
) -> None:
    # Given a Snowflake-like file (DECIMAL counts, ms timestamps, UPPERCASE, COMPANY_ID) by one of three writers
    file_table = snowflake_table(3_500, seed=11)
    upload(DAY_ONE, file_table, writer=writer)

    # When it is synced
    result = run_sync(DAY_ONE, env={"STAGING_LOAD_METHOD": load_method})

    # Then every column of every row equals the file, and the counts say so
    assert result.status == "completed"
    assert (result.rows_processed, result.rows_inserted, result.rows_updated, result.rows_rejected) == (3_500, 3_500, 0, 0)
    assert table_rows(db) == expected_rows(file_table)
    metadata = query(db, "SELECT status, rows_processed, rows_inserted, attempt FROM upsell_signal_sync_metadata")
    assert metadata == [{"status": "completed", "rows_processed": 3_500, "rows_inserted": 3_500, "attempt": 1}]
    assert query(db, "SELECT COUNT(*) AS staged FROM upsell_signal_staging") == [{"staged": 0}]


def test_zoned_timestamps_are_converted_to_utc(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]
) -> None:
    file_table = snowflake_table(10, seed=3)
    index = file_table.schema.get_field_index("MODEL_UPDATED_AT")
    zoned = pc.cast(file_table["MODEL_UPDATED_AT"], pa.timestamp("us", tz="America/New_York"))
    upload(DAY_ONE, file_table.set_column(index, pa.field("MODEL_UPDATED_AT", zoned.type), zoned))

    run_sync(DAY_ONE)

    stored = table_rows(db)
    for record in file_table.to_pylist():
        assert stored[record["CDMS_CANONICAL_COMPANY_ID"]]["model_updated_at"] == record["MODEL_UPDATED_AT"].replace(
            microsecond=0
        )


@pytest.mark.parametrize(("load_method", "list_in"), [("local_infile", "memory"), ("insert", "memory"), ("local_infile", "innodb")])
def test_day_two_counts_are_exact_and_unchanged_rows_keep_updated_at(
    db: pymysql.Connection[Any],
    upload: Callable[..., str],
    run_sync: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    load_method: str,
    list_in: str,
) -> None:
    caplog.set_level(logging.INFO, logger="upsell_signals.ingest")
    # Given day one loaded, and its rows stamped with an old updated_at
    day_one_table = snowflake_table(5_000, seed=21)
    upload(DAY_ONE, day_one_table)
    run_sync(DAY_ONE)
    db.cursor().execute("UPDATE company_upsell_signals SET updated_at = '2020-01-01 00:00:00'")
    day_two_table = day_two(day_one_table, seed=22)
    upload(DAY_TWO, day_two_table)

    # When day two is staged (by LOAD DATA or by INSERT) and published, its list of changes in either engine
    engines = record_publish_list_engine(monkeypatch, list_in)
    result = run_sync(DAY_TWO, env={"STAGING_LOAD_METHOD": load_method})
    assert engines == [list_in]

    # Then the counts match what changed, and only changed or new rows were written
    before, after = expected_rows(day_one_table), expected_rows(day_two_table)
    new_keys = after.keys() - before.keys()
    changed_keys = {key for key in after.keys() & before.keys() if after[key] != before[key]}
    unchanged_keys = (after.keys() & before.keys()) - changed_keys
    assert (result.rows_inserted, result.rows_updated, result.rows_unchanged, result.rows_deleted) == (
        len(new_keys),
        len(changed_keys),
        len(unchanged_keys),
        0,
    )
    assert len(changed_keys) > 300 and len(new_keys) > 10
    stored = table_rows(db)
    assert {key: stored[key] for key in after} == after
    assert len(stored) == len(before.keys() | after.keys())  # keep: absent companies stay
    stamps = {
        row["cdms_canonical_company_id"]: row["updated_at"]
        for row in query(db, "SELECT cdms_canonical_company_id, updated_at FROM company_upsell_signals")
    }
    assert {key for key, stamp in stamps.items() if stamp == dt.datetime(2020, 1, 1)} == unchanged_keys | (
        before.keys() - after.keys()
    )
    # And the publish's log line says how fast this database published what was staged (what
    # ingest.publishRowsPerSecond may follow)
    published = [record for record in caplog.records if record.getMessage() == "published"][-1]
    staged = [record for record in caplog.records if record.getMessage().startswith("staged ")][-1]
    assert published.publish_seconds > 0
    # (the seconds are logged to the millisecond)
    assert published.publish_rows_per_second == pytest.approx(staged.args[0] / published.publish_seconds, rel=0.05)


def test_missing_rows_delete_removes_exactly_the_absent_keys(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]
) -> None:
    day_one_table = snowflake_table(4_000, seed=31)
    upload(DAY_ONE, day_one_table)
    run_sync(DAY_ONE)
    day_two_table = day_two(day_one_table, seed=32)
    upload(DAY_TWO, day_two_table)

    result = run_sync(DAY_TWO, env={"MISSING_ROWS": "delete"})

    gone = expected_rows(day_one_table).keys() - expected_rows(day_two_table).keys()
    assert result.rows_deleted == len(gone) > 0
    assert table_rows(db) == expected_rows(day_two_table)


@pytest.mark.parametrize("list_in", ["memory", "innodb"])
def test_model_run_time_on_every_row_updates_every_existing_row_without_burning_ids(
    db: pymysql.Connection[Any],
    upload: Callable[..., str],
    run_sync: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    list_in: str,
) -> None:
    day_one_table = snowflake_table(2_000, seed=41)
    upload(DAY_ONE, day_one_table)
    run_sync(DAY_ONE)
    ids_before = {
        row["cdms_canonical_company_id"]: row["id"]
        for row in query(db, "SELECT id, cdms_canonical_company_id FROM company_upsell_signals")
    }
    counter_before = next_auto_increment(db)
    day_two_table = day_two(day_one_table, seed=42, model_run_everywhere=True)
    upload(DAY_TWO, day_two_table)

    engines = record_publish_list_engine(monkeypatch, list_in)
    result = run_sync(DAY_TWO)

    assert engines == [list_in]
    kept = len(ids_before.keys() & expected_rows(day_two_table).keys())
    assert (result.rows_updated, result.rows_unchanged) == (kept, 0)
    stored, after = table_rows(db), expected_rows(day_two_table)
    assert {key: stored[key] for key in after} == after
    ids_after = {
        row["cdms_canonical_company_id"]: row["id"]
        for row in query(db, "SELECT id, cdms_canonical_company_id FROM company_upsell_signals")
    }
    assert all(ids_after[key] == ids_before[key] for key in ids_before)
    # ON DUPLICATE KEY UPDATE would burn one id per existing key (~2,000); a bulk INSERT ... SELECT
    # only reserves ids for the new rows (InnoDB hands them out in doubling batches, so at most 2x).
    assert next_auto_increment(db) - counter_before <= 2 * result.rows_inserted


def next_auto_increment(connection: pymysql.Connection[Any]) -> int:
    connection.cursor().execute("ANALYZE TABLE company_upsell_signals")
    rows = query(
        connection,
        "SELECT AUTO_INCREMENT AS next_id FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'company_upsell_signals'",
    )
    return int(rows[0]["next_id"])


def test_same_object_is_skipped_new_etag_is_picked_up_and_force_resyncs(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]
) -> None:
    file_table = snowflake_table(500, seed=51)
    upload(DAY_ONE, file_table)
    assert run_sync(DAY_ONE).status == "completed"

    skipped = run_sync(DAY_ONE)
    forced = run_sync(DAY_ONE, force_resync=True)
    upload(DAY_ONE, day_two(file_table, seed=52))  # a corrected re-export: new ETag
    corrected = run_sync(DAY_ONE)

    assert skipped.status == "skipped" and "already completed" in (skipped.reason or "")
    assert (forced.status, forced.rows_unchanged, forced.rows_updated, forced.rows_inserted) == ("completed", 500, 0, 0)
    assert corrected.status == "completed" and corrected.rows_updated > 0
    runs = query(db, "SELECT status, attempt FROM upsell_signal_sync_runs ORDER BY id")
    assert [run["status"] for run in runs] == ["completed", "skipped", "completed", "completed"]
    assert [run["attempt"] for run in runs] == [1, 1, 2, 3]


def test_dry_run_counts_but_publishes_nothing_and_cleans_staging(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]
) -> None:
    day_one_table = snowflake_table(1_000, seed=61)
    upload(DAY_ONE, day_one_table)
    run_sync(DAY_ONE)
    before = table_rows(db)
    metadata_before = query(db, "SELECT * FROM upsell_signal_sync_metadata")
    upload(DAY_TWO, day_two(day_one_table, seed=62))

    result = run_sync(DAY_TWO, dry_run=True)

    assert result.status == "dry_run" and result.rows_updated and result.rows_inserted
    assert table_rows(db) == before
    assert query(db, "SELECT * FROM upsell_signal_sync_metadata") == metadata_before
    assert query(db, "SELECT COUNT(*) AS n FROM upsell_signal_staging") == [{"n": 0}]
    assert query(db, "SELECT COUNT(*) AS n FROM upsell_signal_staging_progress") == [{"n": 0}]
    assert query(db, "SELECT status FROM upsell_signal_sync_runs ORDER BY id DESC LIMIT 1") == [{"status": "dry_run"}]


def test_truncated_file_fails_cleanly(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any], tmp_path: Any
) -> None:
    whole = write_pyarrow(snowflake_table(2_000, seed=71), tmp_path / "whole.parquet").read_bytes()
    upload(DAY_ONE, raw=whole[: len(whole) // 2])

    with pytest.raises(CorruptFile, match="not a readable Parquet file"):
        run_sync(DAY_ONE)

    assert query(db, "SELECT status, error_message LIKE '%%Parquet%%' AS says_why FROM upsell_signal_sync_metadata") == [
        {"status": "failed", "says_why": 1}
    ]
    assert table_rows(db) == {}


def test_missing_column_is_a_schema_error_naming_it(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]
) -> None:
    upload(DAY_ONE, snowflake_table(100, seed=72).drop_columns(["EE_GROWTH_RATE"]))

    with pytest.raises(SchemaError, match="EE_GROWTH_RATE"):
        run_sync(DAY_ONE)

    assert table_rows(db) == {}


def test_missing_object_is_recorded_as_failed_with_its_url(db: pymysql.Connection[Any], run_sync: Callable[..., Any]) -> None:
    with pytest.raises(
        MissingObject, match=r"no file at s3://signals-test-bucket/passive_upsell_signals/dt=2026-01-30/data\.parquet"
    ):
        run_sync(DAY_ONE)

    rows = query(db, "SELECT status, error_message FROM upsell_signal_sync_metadata")
    assert rows[0]["status"] == "failed" and rows[0]["error_message"].startswith("no file at s3://")


def test_staging_abandoned_for_a_week_is_dropped_by_the_next_successful_sync(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]
) -> None:
    # Given a date whose sync failed on a guard eight days ago (its staging kept for a resume)
    upload(DAY_ONE, snowflake_table(100, seed=81).slice(0, 0))
    with pytest.raises(GuardTripped):
        run_sync(DAY_ONE)
    db.cursor().execute("UPDATE upsell_signal_staging_progress SET updated_at = NOW() - INTERVAL 8 DAY")
    upload(DAY_TWO, snowflake_table(100, seed=82))

    run_sync(DAY_TWO)

    assert query(db, "SELECT COUNT(*) AS n FROM upsell_signal_staging_progress") == [{"n": 0}]
    partitions = query(
        db,
        "SELECT partition_name FROM information_schema.partitions WHERE table_schema = DATABASE() AND table_name = 'upsell_signal_staging'",
    )
    assert partitions == [{"partition_name": "p_sentinel"}]


def test_a_failed_dry_run_leaves_the_metadata_as_it_found_it(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any], tmp_path: Any
) -> None:
    upload(DAY_ONE, snowflake_table(300, seed=83))
    run_sync(DAY_ONE)
    metadata_before = query(db, "SELECT * FROM upsell_signal_sync_metadata")
    whole = write_pyarrow(snowflake_table(300, seed=84), tmp_path / "whole.parquet").read_bytes()
    upload(DAY_ONE, raw=whole[:100])

    with pytest.raises(CorruptFile):
        run_sync(DAY_ONE, dry_run=True, force_resync=True)

    assert query(db, "SELECT * FROM upsell_signal_sync_metadata") == metadata_before
    assert query(db, "SELECT status, dry_run FROM upsell_signal_sync_runs ORDER BY id DESC LIMIT 1") == [
        {"status": "failed", "dry_run": 1}
    ]
