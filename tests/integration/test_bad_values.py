"""One bad value is one rejected row, never a failed file: invalid UTF-8, null-typed columns, huge values."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pymysql
import pytest

from functions.ingest.text_checks import ORIGINAL_VALUE_MAX_BYTES
from functions.shared.errors import GuardTripped
from tests.factories import snowflake_table, write_duckdb, write_pyarrow
from tests.integration.conftest import expected_rows, query, table_rows
from tests.integration.test_validation_and_guards import with_values

DAY_ONE = dt.date(2026, 1, 30)
DAY_TWO = dt.date(2026, 1, 31)
KEY = "CDMS_CANONICAL_COMPANY_ID"


def with_raw_bytes(table: pa.Table, name: str, cells: dict[int, bytes]) -> pa.Table:
    """A copy of `table` whose string column `name` holds these bytes, unchecked, in these rows:
    what a Parquet writer that does not validate UTF-8 puts in a BYTE_ARRAY (String) column."""
    values = pc.cast(table[name].combine_chunks(), pa.binary()).to_pylist()
    for row, raw in cells.items():
        values[row] = raw
    as_binary = pa.array(values, pa.binary())
    unchecked = pa.Array.from_buffers(pa.string(), len(as_binary), as_binary.buffers())
    return table.set_column(table.schema.get_field_index(name), name, unchecked)


def rejects(db: pymysql.Connection[Any]) -> dict[int, dict[str, Any]]:
    return {row["source_row"]: row for row in query(db, "SELECT * FROM upsell_signal_rejected_rows")}


@pytest.mark.parametrize("load_method", ["local_infile", "insert"])
@pytest.mark.parametrize("publish", ["first load", "day two"])
def test_invalid_utf8_values_are_rejected_rows_and_the_rest_loads(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any], load_method: str, publish: str
) -> None:
    # Given (for day two) a table holding day one, and a file with a legacy id that is not
    # UTF-8, a key that is not UTF-8, and another invalid key that appears twice
    env = {"STAGING_LOAD_METHOD": load_method}
    good_table = snowflake_table(400, seed=21)
    sync_date = DAY_ONE
    if publish == "day two":
        upload(DAY_ONE, good_table)
        run_sync(DAY_ONE, env=env)
        sync_date = DAY_TWO
    table_before = table_rows(db)
    file_table = with_raw_bytes(good_table, "COMPANY_ID", {3: b"peo_\xff\xfe3"})
    file_table = with_raw_bytes(file_table, KEY, {7: b"cdms-\xc3(", 8: b"cdms-\xed\xa0\x80", 9: b"cdms-\xed\xa0\x80"})
    upload(sync_date, file_table)

    # When it is synced
    result = run_sync(sync_date, env=env)

    # Then the four rows are rejected with a plain reason and a readable original, the rest load
    assert (result.status, result.rows_rejected) == ("completed", 4)
    rejected = rejects(db)
    assert {row: rejected[row]["reasons"] for row in rejected} == {
        3: "legacy_company_id is not valid UTF-8",
        7: "cdms_canonical_company_id is not valid UTF-8",
        8: "cdms_canonical_company_id is not valid UTF-8",
        9: "cdms_canonical_company_id is not valid UTF-8",
    }
    assert json.loads(rejected[3]["original_values"])["legacy_company_id"] == "peo_\\xff\\xfe3"
    assert rejected[7]["cdms_canonical_company_id"] == "cdms-\\xc3("
    good_rows = expected_rows(good_table)
    rejected_keys = {good_table[KEY][row].as_py() for row in (3, 7, 8, 9)}
    loaded = table_rows(db)
    assert {key: row for key, row in loaded.items() if key not in rejected_keys} == {
        key: row for key, row in good_rows.items() if key not in rejected_keys
    }
    # a rejected row leaves the company's current row as it was
    assert {key: loaded.get(key) for key in rejected_keys} == {key: table_before.get(key) for key in rejected_keys}


def test_a_binary_string_column_from_duckdb_loads_its_utf8_values_and_rejects_the_rest(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]
) -> None:
    # Given a DuckDB file whose legacy id is a BLOB column (Parquet BYTE_ARRAY without String)
    good_table = snowflake_table(200, seed=22)
    blobs = pc.cast(good_table["COMPANY_ID"], pa.binary()).to_pylist()
    blobs[5] = b"\x80peo"
    file_table = good_table.set_column(
        good_table.schema.get_field_index("COMPANY_ID"), "COMPANY_ID", pa.array(blobs, pa.binary())
    )
    upload(DAY_ONE, file_table, writer=write_duckdb)

    # When it is synced, the invalid value is one rejected row and the others load as text
    result = run_sync(DAY_ONE)

    assert (result.status, result.rows_rejected, result.rows_inserted) == ("completed", 1, 199)
    assert rejects(db)[5]["reasons"] == "legacy_company_id is not valid UTF-8"
    expected = expected_rows(good_table)
    del expected[good_table[KEY][5].as_py()]
    assert table_rows(db) == expected


HIGH_SCALE_RATES = ["2.40794999999999999", "95524.47634999999", "-0.12344999999999999", "0.00005000000000000"]


@pytest.mark.parametrize("load_method", ["local_infile", "insert"])
def test_high_scale_decimals_and_float_booleans_are_stored_as_mariadb_itself_stores_them(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any], load_method: str
) -> None:
    # Given a file with Snowflake's NUMBER(38,17) rates (a division's result: digits a float
    # cannot hold), a NUMBER(38,16) count holding a fraction a float cannot see, and a boolean
    # column pandas turned into floats (0.0/1.0, a NaN and a 2.0 among them)
    good_table = snowflake_table(400, seed=25)
    rates = [decimal.Decimal(text) for text in HIGH_SCALE_RATES] + [decimal.Decimal("0.5")] * (400 - len(HIGH_SCALE_RATES))
    counts = [decimal.Decimal(5)] * 400
    counts[10] = decimal.Decimal("3.0000000000000001")
    flags = [float(row % 2) for row in range(400)]
    flags[20], flags[21] = math.nan, 2.0
    file_table = good_table
    for name, values in (
        ("EE_GROWTH_RATE", pa.array(rates, pa.decimal128(38, 17))),
        ("EE_GROWTH", pa.array(counts, pa.decimal128(38, 16))),
        ("IS_ACTIVE_CUSTOMER", pa.array(flags, pa.float64())),
    ):
        file_table = file_table.set_column(file_table.schema.get_field_index(name), name, values)
    upload(DAY_ONE, file_table)

    # When it is synced
    result = run_sync(DAY_ONE, env={"STAGING_LOAD_METHOD": load_method})

    # Then the rates are what the server's own DECIMAL(10,4) makes of them, not of a float
    assert (result.status, result.rows_rejected) == ("completed", 3)
    stored = table_rows(db)
    keys = file_table[KEY].to_pylist()
    server_rounds = [query(db, "SELECT CAST(%s AS DECIMAL(10,4)) AS rate", (text,))[0]["rate"] for text in HIGH_SCALE_RATES]
    assert server_rounds == [decimal.Decimal(text) for text in ("2.4079", "95524.4763", "-0.1234", "0.0001")]
    assert [stored[key]["ee_growth_rate"] for key in keys[: len(HIGH_SCALE_RATES)]] == server_rounds
    # And the hidden fraction, the NaN and the 2.0 are rejected rows with their reasons; 0.0 and 1.0 load
    assert {row: found["reasons"] for row, found in rejects(db).items()} == {
        10: "ee_growth is not a whole number",
        20: "is_active_customer is not a boolean (true/false or 0/1)",
        21: "is_active_customer is not a boolean (true/false or 0/1)",
    }
    assert [stored[keys[row]]["is_active_customer"] for row in (30, 31)] == [0, 1]


NULL_TYPED_COLUMNS = ("CORE_PRODUCT", "EE_GROWTH", "IS_ACTIVE_CUSTOMER", "EE_GROWTH_RATE", "LAST_HI_APP_STARTED_AT")


@pytest.mark.parametrize("load_method", ["local_infile", "insert"])
@pytest.mark.parametrize("writer", [write_pyarrow, write_duckdb], ids=["pyarrow", "duckdb"])
def test_null_typed_columns_load_as_nulls_of_each_columns_type(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any], writer: Any, load_method: str
) -> None:
    # Given a file where a string, an int, a bool, a rate and a timestamp column are all None,
    # stored as Parquet's null type (as pandas writes an all-None column, and pyarrow and DuckDB too)
    file_table = snowflake_table(300, seed=23)
    for name in NULL_TYPED_COLUMNS:
        file_table = file_table.set_column(file_table.schema.get_field_index(name), name, pa.nulls(file_table.num_rows))
    upload(DAY_ONE, file_table, writer=writer)

    # When it is synced, every row loads with NULL in those columns
    result = run_sync(DAY_ONE, env={"STAGING_LOAD_METHOD": load_method})

    assert (result.status, result.rows_rejected, result.rows_inserted) == ("completed", 0, 300)
    assert table_rows(db) == expected_rows(file_table)
    assert {tuple(row[name.lower()] for name in NULL_TYPED_COLUMNS) for row in table_rows(db).values()} == {(None,) * 5}


def test_a_null_typed_key_column_rejects_every_row_as_blank_not_a_crash(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]
) -> None:
    file_table = snowflake_table(50, seed=24)
    upload(DAY_ONE, file_table.set_column(file_table.schema.get_field_index(KEY), KEY, pa.nulls(50)))

    with pytest.raises(GuardTripped, match=r"reject_ratio: 50 of 50 rows rejected \(100.00%\)"):
        run_sync(DAY_ONE)

    assert table_rows(db) == {}


@pytest.fixture
def server_packet_limit_16mib(db: pymysql.Connection[Any]) -> Iterator[None]:
    """The server's max_allowed_packet at MariaDB's own default (16 MiB) for new sessions;
    the throwaway test server runs with 64 MiB."""
    with db.cursor() as cursor:
        cursor.execute("SELECT @@GLOBAL.max_allowed_packet")
        (before,) = cursor.fetchone()
        cursor.execute("SET GLOBAL max_allowed_packet = %s", (16 << 20,))
    try:
        yield
    finally:
        with db.cursor() as cursor:
            cursor.execute("SET GLOBAL max_allowed_packet = %s", (before,))


@pytest.mark.usefixtures("server_packet_limit_16mib")
def test_a_30_mb_value_is_one_rejected_row_stored_capped_and_the_rest_loads(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]
) -> None:
    # Given a file whose row 5 holds a 30 MB legacy id (VARCHAR(64) refuses it)
    huge = "9" * (30 << 20)
    good_table = snowflake_table(400, seed=25)
    upload(DAY_ONE, with_values(good_table, 5, COMPANY_ID=huge))

    # When it is synced
    result = run_sync(DAY_ONE)

    # Then it completes: that row is rejected with its value capped and marked, the rest load
    assert (result.status, result.rows_rejected, result.rows_inserted) == ("completed", 1, 399)
    [rejected] = rejects(db).values()
    assert rejected["reasons"] == "legacy_company_id longer than 64 characters"
    originals = json.loads(rejected["original_values"])
    assert originals["legacy_company_id"] == "9" * ORIGINAL_VALUE_MAX_BYTES + f"…[truncated, {30 << 20} bytes]"
    assert originals["cdms_canonical_company_id"] == good_table[KEY][5].as_py()
    expected = expected_rows(good_table)
    del expected[good_table[KEY][5].as_py()]
    assert table_rows(db) == expected
