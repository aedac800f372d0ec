"""Each validation rule rejects its row with a reason; each guard trips with figures and can be overridden."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pymysql
import pytest

from functions.ingest.sync_values import DurableRun
from functions.shared.errors import BadEvent, GuardTripped
from tests.factories import day_two, snowflake_table
from tests.integration.conftest import expected_rows, query, table_rows

DAY_ONE = dt.date(2026, 1, 30)
DAY_TWO = dt.date(2026, 1, 31)


def with_values(table: pa.Table, row: int, **values: Any) -> pa.Table:
    """A copy of `table` with some cells of one row replaced (column names as in the file)."""
    for name, value in values.items():
        index = table.schema.get_field_index(name)
        cells = table[name].to_pylist()
        cells[row] = value
        table = table.set_column(index, table.schema.field(index), pa.array(cells, table.schema.field(index).type))
    return table


BAD_ROWS = {
    0: ({"CDMS_CANONICAL_COMPANY_ID": None}, "blank or missing cdms_canonical_company_id"),
    1: ({"CDMS_CANONICAL_COMPANY_ID": "   "}, "blank or missing cdms_canonical_company_id"),
    2: ({"CORE_PRODUCT": "x" * 17}, "core_product longer than 16 characters"),
    3: ({"EE_GROWTH": decimal.Decimal(2**31)}, "ee_growth outside INT range"),
    4: ({"COUNT_ICP_MEMBERS_ACTIVE": decimal.Decimal(-(2**31) - 1)}, "count_icp_members_active outside INT range"),
    5: ({"EE_GROWTH_RATE": 1_000_000.0}, "ee_growth_rate outside DECIMAL(10,4)"),
    6: ({"EE_GROWTH_RATE": float("nan")}, "ee_growth_rate outside DECIMAL(10,4)"),
    7: ({"MODEL_UPDATED_AT": dt.datetime(2038, 1, 19, 3, 14, 8)}, "model_updated_at outside TIMESTAMP range"),
    8: ({"LAST_HI_APP_STARTED_AT": dt.datetime(1969, 12, 31)}, "last_hi_app_started_at outside TIMESTAMP range"),
    9: (
        {"COMPANY_ID": "p" * 65, "CORE_PRODUCT": "y" * 20},
        "legacy_company_id longer than 64 characters; core_product longer than 16 characters",
    ),
}


def test_each_rule_rejects_its_row_with_the_reason_and_the_rest_load(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]
) -> None:
    # Given a 400-row file with ten bad rows and one key that appears twice
    file_table = snowflake_table(400, seed=5)
    for row, (values, _) in BAD_ROWS.items():
        file_table = with_values(file_table, row, **values)
    duplicated_key = file_table["CDMS_CANONICAL_COMPANY_ID"][20].as_py()
    file_table = with_values(file_table, 21, CDMS_CANONICAL_COMPANY_ID=duplicated_key)
    upload(DAY_ONE, file_table)

    # When it is synced (12 of 400 rejected is 3%, under the 5% guard)
    result = run_sync(DAY_ONE)

    # Then each bad row is in the rejects table with its reason and original values
    rejects = {row["source_row"]: row for row in query(db, "SELECT * FROM upsell_signal_rejected_rows")}
    assert result.status == "completed" and result.rows_rejected == 12
    for row, (_, reason) in BAD_ROWS.items():
        assert reason in rejects[row]["reasons"], (row, rejects[row]["reasons"])
    assert json.loads(rejects[2]["original_values"])["core_product"] == "x" * 17
    assert json.loads(rejects[20]["original_values"])["cdms_canonical_company_id"] == duplicated_key
    assert rejects[3]["cdms_canonical_company_id"] == file_table["CDMS_CANONICAL_COMPANY_ID"][3].as_py()
    # both copies of the duplicated key are rejected
    assert rejects[20]["reasons"] == rejects[21]["reasons"] == "cdms_canonical_company_id appears 2 times in the file"
    # and the rest is loaded
    loaded = table_rows(db)
    assert len(loaded) == 388 and duplicated_key not in loaded
    assert result.rows_inserted == 388


def test_a_key_duplicated_across_chunks_and_with_an_otherwise_bad_copy_rejects_every_copy(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]
) -> None:
    file_table = snowflake_table(3_000, seed=6)
    key = file_table["CDMS_CANONICAL_COMPANY_ID"][10].as_py()
    file_table = with_values(file_table, 2_500, CDMS_CANONICAL_COMPANY_ID=key)  # another chunk (1,000 rows each)
    file_table = with_values(file_table, 2_900, CDMS_CANONICAL_COMPANY_ID=key, CORE_PRODUCT="z" * 30)
    upload(DAY_ONE, file_table)

    result = run_sync(DAY_ONE)

    rejected_rows = {row["source_row"] for row in query(db, "SELECT source_row FROM upsell_signal_rejected_rows")}
    assert rejected_rows == {10, 2_500, 2_900}
    assert result.rows_rejected == 3 and key not in table_rows(db)


@pytest.mark.parametrize("publish", ["first load", "day two"])
def test_reject_ratio_guard_trips_with_figures_and_leaves_the_table_untouched(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any], publish: str
) -> None:
    # Given (for day two) a table already holding day one, and a file with 10 of 100 rows too long
    sync_date = DAY_ONE
    if publish == "day two":
        upload(DAY_ONE, snowflake_table(100, seed=6))
        run_sync(DAY_ONE)
        sync_date = DAY_TWO
    table_before = table_rows(db)
    file_table = snowflake_table(100, seed=7)
    for row in range(10):
        file_table = with_values(file_table, row, CORE_PRODUCT="too-long-for-the-column")
    upload(sync_date, file_table)

    # When it is synced, the guard trips with its figures and the table is untouched
    with pytest.raises(GuardTripped, match=r"reject_ratio: 10 of 100 rows rejected \(10.00%\), limit 5.00%") as tripped:
        run_sync(sync_date)

    assert tripped.value.figures["reject_ratio"]["rows_rejected"] == 10
    assert table_rows(db) == table_before
    metadata = query(db, "SELECT status, error_message FROM upsell_signal_sync_metadata WHERE sync_date = %s", (sync_date,))
    assert metadata[0]["status"] == "failed" and "reject_ratio" in metadata[0]["error_message"]

    # Then an operator overrides it. A first load went straight into the table and was rolled
    # back, so it loads again; a day two's staged rows are reused, not read again.
    result = run_sync(sync_date, override_guards=frozenset({"reject_ratio"}))
    assert (result.status, result.rows_rejected) == ("completed", 10)
    assert result.rows_inserted + result.rows_updated + result.rows_unchanged == 90
    assert result.rows_resumed == (0 if publish == "first load" else 100)
    loaded_keys = set(file_table["CDMS_CANONICAL_COMPANY_ID"].to_pylist()[10:])
    assert set(table_rows(db)) == set(table_before) | loaded_keys


def test_empty_file_guard(db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]) -> None:
    upload(DAY_ONE, snowflake_table(10, seed=8).slice(0, 0))

    with pytest.raises(GuardTripped, match="empty_file: the file has no rows"):
        run_sync(DAY_ONE)
    assert run_sync(DAY_ONE, override_guards=frozenset({"empty_file"})).status == "completed"


def test_row_count_drift_guard(db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]) -> None:
    day_one_table = snowflake_table(1_000, seed=9)
    upload(DAY_ONE, day_one_table)
    run_sync(DAY_ONE)
    before = table_rows(db)
    upload(DAY_TWO, day_one_table.slice(0, 600))

    with pytest.raises(GuardTripped, match=r"row_count_drift: 600 rows against 1000 on 2026-01-30 \(40.00% drift\)"):
        run_sync(DAY_TWO)

    assert table_rows(db) == before
    assert run_sync(DAY_TWO, override_guards=frozenset({"row_count_drift"})).status == "completed"


def test_row_count_drift_is_judged_against_the_latest_completed_date(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]
) -> None:
    # Given 600 companies on day one, then 1,000 on day two (its drift accepted by a person)
    companies = snowflake_table(1_000, seed=9)
    upload(DAY_ONE, companies.slice(0, 600))
    run_sync(DAY_ONE)
    upload(DAY_TWO, companies)
    assert run_sync(DAY_TWO, override_guards=frozenset({"row_count_drift"})).status == "completed"
    # When day three carries the same 1,000
    day_three = DAY_TWO + dt.timedelta(days=1)
    upload(day_three, companies)
    # Then it is measured against day two, not day one, and publishes without a trip
    assert run_sync(day_three).status == "completed"
    assert table_rows(db) == expected_rows(companies)


def test_delete_ratio_guard_only_when_deleting(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]
) -> None:
    day_one_table = snowflake_table(1_000, seed=10)
    upload(DAY_ONE, day_one_table)
    run_sync(DAY_ONE)
    upload(DAY_TWO, day_one_table.slice(0, 800))
    before = table_rows(db)

    with pytest.raises(GuardTripped, match=r"delete_ratio: 200 of 1000 rows would be deleted \(20.00%\)"):
        run_sync(DAY_TWO, env={"MISSING_ROWS": "delete"})
    assert table_rows(db) == before

    result = run_sync(DAY_TWO, env={"MISSING_ROWS": "delete"}, override_guards=frozenset({"delete_ratio"}))
    assert result.rows_deleted == 200 and len(table_rows(db)) == 800


def test_stale_date_guard_is_not_lifted_by_force_resync(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]
) -> None:
    day_one_table = snowflake_table(500, seed=12)
    upload(DAY_ONE, day_one_table)
    upload(DAY_TWO, day_two(day_one_table, seed=13))
    run_sync(DAY_TWO)
    after_day_two = table_rows(db)

    with pytest.raises(GuardTripped, match="stale_date: 2026-01-30 is older than the newest completed date 2026-01-31"):
        run_sync(DAY_ONE, force_resync=True)
    assert table_rows(db) == after_day_two

    # And overridden, the replay completes, yet writes no older value over a newer one: it adds
    # only the companies day two lacks, as if day one had come first
    replayed = run_sync(DAY_ONE, override_guards=frozenset({"stale_date"}))
    assert replayed.status == "completed" and (replayed.rows_superseded or 0) > 0
    assert table_rows(db) == {**expected_rows(day_one_table), **after_day_two}


def run_begun_on(today: dt.date) -> DurableRun:
    """A durable execution's first run, begun on `today` (UTC): the day the guards judge by."""
    return DurableRun(holder_token=uuid.uuid4().hex, execution_arn="arn:test", number=1, started_on=today)


def test_future_date_guard_stops_a_file_dated_after_tomorrow(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]
) -> None:
    # Given a file dated 2026-01-31 (a mistyped date, say) arriving on 2026-01-29
    table = snowflake_table(300, seed=15)
    upload(DAY_TWO, table)
    # When its arrival is synced, Then future_date refuses it and nothing is published
    with pytest.raises(GuardTripped, match=r"future_date: 2026-01-31 is after 2026-01-30 \(today 2026-01-29 UTC"):
        run_sync(DAY_TWO, trigger="eventbridge_s3", durable_run=run_begun_on(dt.date(2026, 1, 29)))
    assert table_rows(db) == {}
    # And replayed a day later (a clock ahead of UTC may date a file tomorrow) it publishes
    assert run_sync(DAY_TWO, durable_run=run_begun_on(DAY_ONE)).status == "completed"
    assert table_rows(db) == expected_rows(table)
    # And a person who means it runs a date further ahead by overriding the guard
    upload(dt.date(2026, 2, 5), table)
    forced = run_sync(dt.date(2026, 2, 5), durable_run=run_begun_on(DAY_ONE), override_guards=frozenset({"future_date"}))
    assert forced.status == "completed"


def test_unknown_guard_name_is_refused_with_the_valid_ones(upload: Callable[..., str], run_sync: Callable[..., Any]) -> None:
    upload(DAY_ONE, snowflake_table(10, seed=14))

    with pytest.raises(
        BadEvent, match="valid names: reject_ratio, row_count_drift, empty_file, delete_ratio, stale_date, future_date"
    ):
        run_sync(DAY_ONE, override_guards=frozenset({"row_count"}))


def every_row_rejected(table: pa.Table, column: str, value: Any, data_type: pa.DataType) -> pa.Table:
    """An upstream bug: the same bad value in every row."""
    index = table.schema.get_field_index(column)
    return table.set_column(index, column, pa.array([value] * table.num_rows, data_type))


ROWS_ALL_BAD = 20_000  # 20 chunks of 1,000 rows (ingest_env)


@pytest.mark.parametrize("publish", ["first load", "day two"])
def test_a_file_rejected_row_after_row_stops_early_with_reject_ratio_and_an_override_syncs_it_all(
    db: pymysql.Connection[Any],
    upload: Callable[..., str],
    run_sync: Callable[..., Any],
    publish: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="upsell_signals.ingest")
    # Given (for day two) a table already holding day one, and a file whose every row is rejected
    sync_date = DAY_ONE
    day_one = snowflake_table(ROWS_ALL_BAD, seed=6)
    if publish == "day two":
        upload(DAY_ONE, day_one)
        run_sync(DAY_ONE)
        sync_date = DAY_TWO
        file_table = every_row_rejected(day_two(day_one), "CORE_PRODUCT", "x" * 17, pa.string())
    else:
        file_table = every_row_rejected(day_one, "LAST_REMOTE_EMPLOYEE_INVITED_AT", dt.datetime(9999, 12, 31), pa.timestamp("ms"))
    rows = file_table.num_rows
    # The first chunk's end (1,000 rows each) whose rejects pass 5% of the whole file: 2,000 of 20,000
    stop_row = next(end for end in range(1_000, rows, 1_000) if end / rows > 0.05)
    table_before = table_rows(db)
    upload(sync_date, file_table)

    # When it is synced, it stops once the rows rejected so far trip reject_ratio whatever the rest
    # holds, failing the date with the guard, saying where it stopped and with its figures
    with pytest.raises(
        GuardTripped, match=rf"reject_ratio: {stop_row} of the file's {rows} rows rejected .*stopped early at row {stop_row}"
    ) as tripped:
        run_sync(sync_date)
    assert tripped.value.figures["reject_ratio"] == {
        "rows_rejected": stop_row,
        "rows_read": stop_row,
        "rows_in_file": rows,
        "stopped_early_at_row": stop_row,
        "ratio": round(stop_row / rows, 6),
        "limit": 0.05,
    }
    if publish == "day two":  # the compare, which validates too, stopped as early
        assert any("where it stopped early" in record.getMessage() for record in caplog.records)
    # Then nothing is published, the date failed with the reason, and the rejected rows read are kept, not the rest
    assert table_rows(db) == table_before
    metadata = query(db, "SELECT status, error_message FROM upsell_signal_sync_metadata WHERE sync_date = %s", (sync_date,))
    assert metadata[0]["status"] == "failed" and f"stopped early at row {stop_row}" in metadata[0]["error_message"]
    recorded = query(db, "SELECT source_row, reasons FROM upsell_signal_rejected_rows WHERE sync_date = %s", (sync_date,))
    assert sorted(row["source_row"] for row in recorded) == list(range(stop_row))
    assert all(("outside TIMESTAMP range" if publish == "first load" else "longer than 16") in row["reasons"] for row in recorded)

    # When it is synced again without an override, it stops again, recording no row twice
    with pytest.raises(GuardTripped, match="stopped early"):
        run_sync(sync_date)
    assert query(db, "SELECT COUNT(*) AS n FROM upsell_signal_rejected_rows WHERE sync_date = %s", (sync_date,))[0]["n"] == (
        2 * stop_row if publish == "first load" else stop_row  # a first load is rolled back, so is recorded under each claim
    )

    # Then an override reads the whole file: every row rejected and recorded, nothing written, completed
    # (a day two loading no row drifts from day one's count too)
    overrides = {"reject_ratio", "row_count_drift"} if publish == "day two" else {"reject_ratio"}
    result = run_sync(sync_date, override_guards=frozenset(overrides))
    assert (result.status, result.rows_processed, result.rows_rejected) == ("completed", rows, rows)
    assert result.rows_inserted + result.rows_updated == 0
    assert table_rows(db) == table_before
    latest = query(
        db,
        "SELECT COUNT(DISTINCT source_row) AS n FROM upsell_signal_rejected_rows WHERE sync_date = %s "
        "AND attempt = (SELECT MAX(attempt) FROM upsell_signal_rejected_rows WHERE sync_date = %s)",
        (sync_date, sync_date),
    )
    assert latest[0]["n"] == rows  # a day two's resumed pass: the rows of its first run and the rest


def test_a_dry_run_of_a_file_rejected_row_after_row_reads_it_all_and_answers_the_guard_it_would_trip(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]
) -> None:
    # Given a file whose every row is rejected
    file_table = every_row_rejected(snowflake_table(5_000, seed=6), "CORE_PRODUCT", "x" * 17, pa.string())
    upload(DAY_ONE, file_table)

    # When it is dry-run, Then it reads every row (a dry run answers every count) and names the guard
    result = run_sync(DAY_ONE, dry_run=True)
    assert (result.status, result.rows_rejected, result.guards_tripped) == ("dry_run", 5_000, ["reject_ratio"])
