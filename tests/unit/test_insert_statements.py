"""SQL literals and multi-row INSERT statements rendered column-wise (no database here).

Strings are checked against PyMySQL's own escaping: the statements must mean what
executemany's did. The round trip through MariaDB is in tests/integration.
"""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa
import pytest
from pymysql.converters import escape_string

from functions.ingest.insert_statements import insert_statements, sql_literals
from tests.nasty_strings import ASCII, FIXED_CASES, UNICODE, at_limit, random_strings


def pymysql_literal(value: str | None, *, no_backslash_escapes: bool = False) -> str:
    """What PyMySQL sends for a string parameter (Connection.escape_string, then quoted)."""
    if value is None:
        return "NULL"
    return "'" + (value.replace("'", "''") if no_backslash_escapes else escape_string(value)) + "'"


def strings_under_test() -> list[str | None]:
    return [
        *FIXED_CASES,
        *ASCII,
        *UNICODE,
        None,
        *random_strings(seed=1601, count=2_000, max_length=40),
        *at_limit(64),
        *at_limit(16),
    ]


@pytest.mark.parametrize("no_backslash_escapes", [False, True])
def test_strings_are_escaped_exactly_as_pymysql_escapes_them(no_backslash_escapes: bool) -> None:
    values = strings_under_test()
    rendered = sql_literals(pa.array(values, pa.string()), no_backslash_escapes=no_backslash_escapes).to_pylist()
    assert rendered == [pymysql_literal(value, no_backslash_escapes=no_backslash_escapes) for value in values]


def test_a_column_without_anything_to_escape_is_only_quoted() -> None:
    assert sql_literals(pa.array(["peo", None, "plus"])).to_pylist() == ["'peo'", "NULL", "'plus'"]


def test_large_strings_and_chunked_columns_render_the_same() -> None:
    values = random_strings(seed=3, count=300, max_length=20)
    chunked = pa.chunked_array([pa.array(values[:100], pa.large_string()), pa.array(values[100:], pa.large_string())])
    assert sql_literals(chunked).to_pylist() == [pymysql_literal(value) for value in values]


def test_numbers_booleans_decimals_dates_and_timestamps() -> None:
    assert sql_literals(pa.array([0, -(2**31), 2**31 - 1, None], pa.int64())).to_pylist() == [
        "0",
        "-2147483648",
        "2147483647",
        "NULL",
    ]
    assert sql_literals(pa.array([True, False, None])).to_pylist() == ["1", "0", "NULL"]
    rates = [decimal.Decimal("0.0001"), decimal.Decimal("-999999.9999"), decimal.Decimal("0"), decimal.Decimal("1.5"), None]
    assert sql_literals(pa.array(rates, pa.decimal128(10, 4))).to_pylist() == [
        "0.0001",
        "-999999.9999",
        "0.0000",
        "1.5000",
        "NULL",
    ]
    stamps = [dt.datetime(1970, 1, 1, 0, 0, 1), dt.datetime(2038, 1, 19, 3, 14, 7), None]
    assert sql_literals(pa.array(stamps, pa.timestamp("s"))).to_pylist() == [
        "'1970-01-01 00:00:01'",
        "'2038-01-19 03:14:07'",
        "NULL",
    ]
    assert sql_literals(pa.array([dt.date(2026, 1, 30)])).to_pylist() == ["'2026-01-30'"]


@pytest.mark.parametrize(
    "data_type",
    [pa.float64(), pa.timestamp("ms"), pa.timestamp("s", tz="UTC"), pa.decimal128(38, 20), pa.binary(), pa.time32("s")],
    ids=str,
)
def test_types_without_a_rule_are_refused(data_type: pa.DataType) -> None:
    with pytest.raises(TypeError, match="no SQL literal rule"):
        sql_literals(pa.nulls(2, data_type))


def rows_of(statements: list[bytes], head: bytes) -> list[str]:
    """The row tuples of rendered statements, split back apart (values here hold no '),(')."""
    rows: list[str] = []
    for statement in statements:
        assert statement.startswith(head)
        rows += statement[len(head) :].decode()[1:-1].split("),(")
    return rows


@pytest.mark.parametrize("max_bytes", [16_384, 65_536, 1_000_000])
def test_statements_hold_every_row_in_order_and_stay_under_the_size(max_bytes: int) -> None:
    count = 5_000
    table = pa.table(
        {
            "n": pa.array(range(count), pa.int64()),
            "s": pa.array([f"v{index}" * (index % 7) for index in range(count)]),
        }
    )
    statements = list(
        insert_statements("t", ["n", "s"], table, fixed={"d": pa.scalar(dt.date(2026, 1, 30))}, max_statement_bytes=max_bytes)
    )
    head = b"INSERT INTO t (d, n, s) VALUES "
    assert all(len(statement) <= max_bytes for statement in statements)
    assert rows_of(statements, head) == [f"'2026-01-30',{index},'{f'v{index}' * (index % 7)}'" for index in range(count)]
    if max_bytes < len(b"".join(statements)):
        assert len(statements) > 1


def test_a_row_longer_than_the_size_is_a_statement_of_its_own() -> None:
    table = pa.table({"s": pa.array(["x", "y" * 20_000, "z"])})
    statements = list(insert_statements("t", ["s"], table, max_statement_bytes=16_384))
    assert rows_of(statements, b"INSERT INTO t (s) VALUES ") == ["'x'", f"'{'y' * 20_000}'", "'z'"]
    assert len(statements) == 3


def test_no_rows_no_statements_and_sliced_tables_keep_their_window() -> None:
    table = pa.table({"n": pa.array(range(10), pa.int64())})
    assert list(insert_statements("t", ["n"], table.slice(0, 0))) == []
    assert list(insert_statements("t", ["n"], table.slice(3, 4))) == [b"INSERT INTO t (n) VALUES (3),(4),(5),(6)"]


@pytest.mark.parametrize("special", list("\\'\"\0\n\r\x1a"), ids=repr)
@pytest.mark.parametrize("no_backslash_escapes", [False, True])
def test_a_column_whose_only_special_character_is_one_of_them_is_still_escaped(special: str, no_backslash_escapes: bool) -> None:
    # The scan that skips clean columns must see every character that needs escaping on its own.
    values = ["plain", f"a{special}b", None]
    rendered = sql_literals(pa.array(values), no_backslash_escapes=no_backslash_escapes).to_pylist()
    assert rendered == [pymysql_literal(value, no_backslash_escapes=no_backslash_escapes) for value in values]
