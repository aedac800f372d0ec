"""One bad value is one rejected row, never a failed file: invalid UTF-8, null-typed columns, huge values."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pymysql
import pytest

from functions.shared.errors import GuardTripped
from tests.factories import snowflake_table, write_duckdb, write_pyarrow
from tests.integration.conftest import expected_rows, table_rows

DAY_ONE = dt.date(2026, 1, 30)
DAY_TWO = dt.date(2026, 1, 31)
KEY = "CDMS_CANONICAL_COMPANY_ID"


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
