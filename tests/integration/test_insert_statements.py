"""Nasty strings round-trip through MariaDB by both load methods: the table equals the file.

The INSERT path renders its own SQL literals (functions/ingest/insert_statements.py);
these tests hold it to LOAD DATA's file and to the values themselves, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pymysql
import pytest

from functions.ingest import insert_statements
from functions.ingest.columns import SIGNAL_COLUMNS, Kind
from functions.ingest.repository import Repository
from functions.ingest.validation import NO_DUPLICATES, validate_batch
from functions.shared.db import connect
from functions.shared.errors import PermanentError
from functions.shared.settings import DatabaseSettings
from tests.factories import snowflake_table
from tests.integration.conftest import DAY_ONE, DAY_TWO, expected_rows, table_rows
from tests.nasty_strings import ASCII, FIXED_CASES, UNICODE, at_limit, random_strings

STRING_COLUMNS = {column.name: column.max_length for column in SIGNAL_COLUMNS if column.kind is Kind.STRING}
PARQUET_NAMES = {
    column.name: "COMPANY_ID" if column.name == "legacy_company_id" else column.name.upper() for column in SIGNAL_COLUMNS
}


def nasty_values(rows: int, max_length: int, seed: int) -> list[str | None]:
    """`rows` values for a column of `max_length` characters: fixed cases, limits, then seeded draws."""
    values: list[str | None] = [*FIXED_CASES, *ASCII, *UNICODE, *at_limit(max_length), None]
    values += random_strings(seed, rows, max_length)
    return [None if value is None else value[:max_length] for value in values[:rows]]


def nasty_file(rows: int, seed: int) -> pa.Table:
    """A Snowflake-like file whose every string column holds nasty values (keys unique, non-blank, at most 64)."""
    table = snowflake_table(rows, seed=seed)
    for offset, (name, max_length) in enumerate(STRING_COLUMNS.items()):
        assert max_length is not None
        values = nasty_values(rows, max_length, seed * 10 + offset)
        if name == "cdms_canonical_company_id":
            # A visible, unique head keeps keys distinct and non-blank; the tail is nasty up to the limit.
            values = [f"k{index}:{value or ''}"[:max_length] for index, value in enumerate(values)]
        index = table.schema.get_field_index(PARQUET_NAMES[name])
        table = table.set_column(index, PARQUET_NAMES[name], pa.array(values, pa.string()))
    return table


@pytest.mark.parametrize("load_method", ["local_infile", "insert"])
def test_nasty_strings_round_trip_through_first_load_staging_and_resync(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any], load_method: str
) -> None:
    env = {"STAGING_LOAD_METHOD": load_method}
    # Given a first load of nasty strings (straight into the empty table)
    day_one = nasty_file(1_500, seed=161)
    upload(DAY_ONE, day_one)
    first = run_sync(DAY_ONE, env=env)
    assert (first.rows_inserted, first.rows_rejected) == (1_500, 0)
    assert table_rows(db) == expected_rows(day_one)

    # When another file of nasty strings is staged and published over it (rows updated and inserted)
    day_two = nasty_file(1_500, seed=162)
    upload(DAY_TWO, day_two)
    second = run_sync(DAY_TWO, env=env)

    # Then the table holds the second file's rows exactly, and day one's other rows as they were
    before, after = expected_rows(day_one), expected_rows(day_two)
    assert second.rows_rejected == 0 and second.rows_updated > 0 and second.rows_inserted > 0
    assert table_rows(db) == before | after

    # And staging the same file again finds every row unchanged: staged bytes equal stored bytes
    again = run_sync(DAY_TWO, env=env, force_resync=True)
    assert (again.rows_inserted, again.rows_updated, again.rows_unchanged) == (0, 0, 1_500)


def canonical_batch(table: pa.Table) -> pa.RecordBatch:
    """The file's rows under the table's column names, as the Parquet reader hands them to validation."""
    names = {parquet: name for name, parquet in PARQUET_NAMES.items()}
    return pa.RecordBatch.from_arrays(
        [column.chunk(0) for column in table.combine_chunks().columns], names=[names[name] for name in table.column_names]
    )


@pytest.mark.parametrize("sql_mode", ["server default", "NO_BACKSLASH_ESCAPES"])
@pytest.mark.parametrize("statement_bytes", [16_384, 1_000_000])
def test_random_strings_insert_exactly_in_either_escaping_mode(
    db: pymysql.Connection[Any],
    migrated_settings: DatabaseSettings,
    monkeypatch: pytest.MonkeyPatch,
    sql_mode: str,
    statement_bytes: int,
) -> None:
    # Given 3,000 rows of nasty strings, all valid, split into statements of `statement_bytes`
    monkeypatch.setattr(insert_statements, "DEFAULT_STATEMENT_BYTES", statement_bytes)
    file_table = nasty_file(3_000, seed=1600 + statement_bytes % 97)
    valid = validate_batch(canonical_batch(file_table), 0, NO_DUPLICATES)
    assert not valid.rejected_rows
    connection = connect(migrated_settings)
    try:
        # And a session that treats backslashes as the server does by default, or as plain characters
        if sql_mode != "server default":
            with connection.cursor() as cursor:
                cursor.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
        # When the INSERT path writes them
        repository = Repository(connection)
        with repository.transaction("insert nasty rows"):
            repository.signals.insert_signal_rows(valid.valid_rows)
    finally:
        connection.close()
    # Then the table holds exactly the file's values
    assert table_rows(db) == expected_rows(file_table)


def test_a_value_the_server_would_change_is_refused_not_stored(
    db: pymysql.Connection[Any], migrated_settings: DatabaseSettings
) -> None:
    # Given a string past its column (validation would have rejected it), in a non-strict session,
    # where the server would store it cut with a warning
    rows = validate_batch(canonical_batch(snowflake_table(3, seed=5)), 0, NO_DUPLICATES).valid_rows
    rows = rows.set_column(rows.schema.get_field_index("core_product"), "core_product", pa.array(["x" * 17] * 3))
    connection = connect(migrated_settings)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION sql_mode = ''")
        # When the INSERT path writes it, Then the warning is a permanent error naming a validation gap
        repository = Repository(connection)
        with pytest.raises(PermanentError, match="validation gap"), repository.transaction("insert a long value"):
            repository.signals.insert_signal_rows(rows)
    finally:
        connection.close()
    # And nothing is stored
    assert table_rows(db) == {}
