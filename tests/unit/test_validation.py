"""Type normalisation and row rules, on in-memory batches (no database)."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import pyarrow as pa
import pytest

from functions.ingest.columns import SIGNAL_COLUMNS, Kind
from functions.ingest.parquet_reader import map_columns
from functions.ingest.validation import accepts_type, validate_batch
from functions.shared.errors import SchemaError
from tests.factories import snowflake_table


def batch_with(**overrides: pa.Array) -> pa.RecordBatch:
    """A batch of two valid rows (canonical names), some columns replaced."""
    arrays: dict[str, pa.Array] = {}
    for column in SIGNAL_COLUMNS:
        if column.kind is Kind.STRING:
            arrays[column.name] = pa.array(["a", "b"])
        elif column.kind is Kind.INT:
            arrays[column.name] = pa.array([1, 2], pa.int32())
        elif column.kind is Kind.BOOL:
            arrays[column.name] = pa.array([True, False])
        elif column.kind is Kind.RATE:
            arrays[column.name] = pa.array([0.5, 0.25])
        else:
            arrays[column.name] = pa.array([dt.datetime(2026, 1, 1), None], pa.timestamp("ms"))
    arrays.update(overrides)
    return pa.RecordBatch.from_pydict(arrays)


def column_values(batch: pa.RecordBatch, name: str) -> list[Any]:
    return validate_batch(batch, 0).valid_rows.column(name).to_pylist()


@pytest.mark.parametrize(
    "values",
    [
        pa.array([1, 2], pa.int8()),
        pa.array([1, 2], pa.uint64()),
        pa.array([decimal.Decimal(1), decimal.Decimal(2)], pa.decimal128(38, 0)),
        pa.array([decimal.Decimal("1.00"), decimal.Decimal("2.00")], pa.decimal128(10, 2)),
        pa.array([1.0, 2.0], pa.float64()),
        # As floats these are not whole: pyarrow makes DECIMAL(38,5)'s 3 into 3.0000000000000004
        pa.array([decimal.Decimal(3), decimal.Decimal(7)], pa.decimal128(38, 5)),
        pa.array([decimal.Decimal(3), decimal.Decimal(7)], pa.decimal128(38, 15)),
        # pyarrow's compute has no floor for these
        pa.array([decimal.Decimal(1), decimal.Decimal(2)], pa.decimal64(18, 2)),
        pa.array([decimal.Decimal(1), decimal.Decimal(2)], pa.decimal32(9, 2)),
    ],
    ids=["int8", "uint64", "decimal38_0", "decimal_with_zero_fraction", "float", "decimal38_5", "decimal38_15", "decimal64", "decimal32"],
)
def test_whole_numbers_of_any_type_become_ints(values: pa.Array) -> None:
    # Given a count column of any whole-number type; When validated; Then its values are plain ints
    assert column_values(batch_with(ee_growth=values), "ee_growth") == [int(value) for value in values.to_pylist()]


def test_fractional_and_out_of_range_counts_are_rejected() -> None:
    # Given counts with a fraction, and beyond INT
    batch = batch_with(ee_growth=pa.array([1.5, 2**40], pa.float64()))
    # When validated from source row 10
    result = validate_batch(batch, 10)
    # Then each row is rejected with its source row and reason
    assert [(row.source_row, row.reasons) for row in result.rejected_rows] == [
        (10, "ee_growth is not a whole number"),
        (11, "ee_growth outside INT range"),
    ]


def test_fractions_a_float_cannot_see_and_fractions_of_a_pure_fraction_type_are_rejected() -> None:
    # Given NUMBER(38,16) counts, one a hair above 3, and DECIMAL(4,4) counts (no integer digit)
    hidden = pa.array([decimal.Decimal("3.0000000000000001"), decimal.Decimal(3)], pa.decimal128(38, 16))
    pure = pa.array([decimal.Decimal("0.5000"), decimal.Decimal(0)], pa.decimal128(4, 4))
    # When validated; Then only the fractions are rejected, each as not whole, and the wholes load
    for counts in (hidden, pure):
        result = validate_batch(batch_with(ee_growth=counts), 0)
        assert [row.reasons for row in result.rejected_rows] == ["ee_growth is not a whole number"]
        assert result.valid_rows.column("ee_growth").to_pylist() == [counts[1].as_py()]


def test_unsigned_beyond_int64_is_rejected_not_overflowed() -> None:
    # Given an unsigned count beyond int64; When validated
    result = validate_batch(batch_with(ee_growth=pa.array([2**63 + 5, 3], pa.uint64())), 0)
    # Then that row is rejected as out of range, and the other is kept unchanged
    assert [row.reasons for row in result.rejected_rows] == ["ee_growth outside INT range"]
    assert result.valid_rows.column("ee_growth").to_pylist() == [3]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_timestamps_of_any_unit_are_cut_to_seconds(unit: str) -> None:
    # Given a timestamp with microseconds, in any unit
    moment = pa.array([dt.datetime(2026, 1, 2, 3, 4, 5, 999999), None], pa.timestamp(unit))
    # When validated; Then it is cut to whole seconds, and a null stays null
    assert column_values(batch_with(model_updated_at=moment), "model_updated_at") == [dt.datetime(2026, 1, 2, 3, 4, 5), None]


def test_zoned_timestamps_become_utc_and_dates_midnight() -> None:
    # Given a zoned timestamp and a date-typed timestamp column
    zoned = pa.array([dt.datetime(2026, 1, 2, 12, 0, tzinfo=dt.UTC), None], pa.timestamp("us", tz="Asia/Tokyo"))
    dates = pa.array([dt.date(2026, 1, 2), None], pa.date32())
    # When validated
    batch = batch_with(model_updated_at=zoned, last_hi_app_started_at=dates)
    # Then the zoned one is in UTC, naive, and the date is its midnight
    assert column_values(batch, "model_updated_at") == [dt.datetime(2026, 1, 2, 12, 0), None]
    assert column_values(batch, "last_hi_app_started_at") == [dt.datetime(2026, 1, 2), None]


def test_dictionary_and_large_strings_are_read_as_text() -> None:
    # Given a dictionary-encoded and a large-string column
    batch = batch_with(
        core_product=pa.array(["peo", "peo"]).dictionary_encode(), current_product_tier=pa.array(["x", "y"], pa.large_string())
    )
    # When validated; Then both read as plain text
    assert column_values(batch, "core_product") == ["peo", "peo"]
    assert column_values(batch, "current_product_tier") == ["x", "y"]


def test_rates_are_rounded_half_away_from_zero_to_four_places() -> None:
    # Given rates with five decimal places, one negative
    rates = pa.array([decimal.Decimal("0.12345"), decimal.Decimal("-0.00005")], pa.decimal128(12, 5))
    # When validated; Then they are rounded half away from zero to DECIMAL(10,4)
    assert column_values(batch_with(ee_growth_rate=rates), "ee_growth_rate") == [
        decimal.Decimal("0.1235"),
        decimal.Decimal("-0.0001"),
    ]


def test_integer_booleans_must_be_zero_or_one() -> None:
    # Given a boolean column written as integers 1 and 2; When validated
    result = validate_batch(batch_with(is_active_customer=pa.array([1, 2], pa.int64())), 0)
    # Then 1 is true, and 2 is rejected with a reason
    assert result.valid_rows.column("is_active_customer").to_pylist() == [True]
    assert result.rejected_rows[0].reasons == "is_active_customer is not a boolean (true/false or 0/1)"


def test_an_all_null_column_is_accepted_as_nulls() -> None:
    # Given columns of the null type (every value null)
    batch = batch_with(ee_growth=pa.nulls(2), core_product=pa.nulls(2))
    # When validated; Then they are nulls of the column's type, not a failed file
    assert column_values(batch, "ee_growth") == [None, None]
    assert column_values(batch, "core_product") == [None, None]


def snowflake_schema(**changes: pa.DataType | None) -> pa.Schema:
    """The schema of a Snowflake-like file, with columns changed (a type) or removed (None)."""
    fields = {field.name: field.type for field in snowflake_table(1).schema}
    for name, data_type in changes.items():
        if data_type is None:
            fields.pop(name)
        else:
            fields[name] = data_type
    return pa.schema(list(fields.items()))


def test_columns_match_case_insensitively_and_extras_are_ignored() -> None:
    # Given a Snowflake schema (UPPERCASE names) with an extra column
    schema = snowflake_schema(EE_GROWTH=pa.int64(), _LOADED_AT=pa.timestamp("ms"), MODEL_UPDATED_AT=pa.timestamp("ms"))
    # When its columns are mapped
    mapping = map_columns(schema)
    # Then names match whatever their case, and the extra column is ignored
    assert mapping.source_for["legacy_company_id"] == "COMPANY_ID"
    assert mapping.ignored == ("_LOADED_AT",)


def test_legacy_company_id_is_preferred_over_company_id_when_both_exist() -> None:
    # Given a schema with both LEGACY_COMPANY_ID and COMPANY_ID
    schema = snowflake_schema(LEGACY_COMPANY_ID=pa.string(), MODEL_UPDATED_AT=pa.timestamp("ms"), EE_GROWTH=pa.int64())
    # When its columns are mapped
    mapping = map_columns(schema)
    # Then LEGACY_COMPANY_ID is the key, and COMPANY_ID is ignored
    assert mapping.source_for["legacy_company_id"] == "LEGACY_COMPANY_ID" and mapping.ignored == ("COMPANY_ID",)


def test_missing_columns_and_unusable_types_are_named_together() -> None:
    # Given a schema missing two required columns and with an unusable type
    schema = snowflake_schema(EE_GROWTH=None, COMPANY_ID=None, MODEL_UPDATED_AT=pa.string())
    # When its columns are mapped
    with pytest.raises(SchemaError) as error:
        map_columns(schema)
    message = str(error.value)
    # Then one SchemaError names every problem
    assert "missing required column(s): LEGACY_COMPANY_ID or COMPANY_ID, EE_GROWTH" in message
    assert "MODEL_UPDATED_AT has type string, not usable as timestamp" in message


def test_two_columns_differing_only_by_case_are_refused() -> None:
    # Given a schema with two columns whose names differ only by case
    schema = snowflake_schema(EE_GROWTH=pa.int64()).append(pa.field("ee_growth", pa.int64()))
    # When its columns are mapped, Then it is refused
    with pytest.raises(SchemaError, match="differ only by case"):
        map_columns(schema)


def test_a_rate_rounded_up_past_its_decimals_precision_is_carried_not_a_failed_file() -> None:
    # Given DECIMAL(5,5) rates whose rounding carries into the units, and a NUMBER(38,17)
    # rate just under half a unit of the fourth place
    carried = pa.array([decimal.Decimal("0.99995"), decimal.Decimal("-0.99994")], pa.decimal128(5, 5))
    under_half = pa.array([decimal.Decimal("2.40794999999999999"), None], pa.decimal128(38, 17))
    # When validated; Then the first carries to 1.0000 and the second rounds down, as MariaDB's DECIMAL(10,4) does
    assert column_values(batch_with(ee_growth_rate=carried), "ee_growth_rate") == [
        decimal.Decimal("1.0000"),
        decimal.Decimal("-0.9999"),
    ]
    assert column_values(batch_with(ee_growth_rate=under_half), "ee_growth_rate") == [decimal.Decimal("2.4079"), None]
    # And so in the narrowest and the widest decimal types too
    narrow = pa.array([decimal.Decimal("0.99995"), decimal.Decimal("-1.00004")], pa.decimal32(7, 5))
    widest = pa.array([decimal.Decimal("2.40794999999999999"), decimal.Decimal("999999.99995")], pa.decimal256(76, 17))
    assert column_values(batch_with(ee_growth_rate=narrow), "ee_growth_rate") == [decimal.Decimal("1.0000"), decimal.Decimal("-1.0000")]
    assert column_values(batch_with(ee_growth_rate=widest), "ee_growth_rate") == [decimal.Decimal("2.4079")]  # the other is 10^6


def test_float_booleans_must_be_zero_or_one() -> None:
    # Given a boolean column pandas turned into floats (-0.0 from a negation or a rounding)
    column = next(column for column in SIGNAL_COLUMNS if column.name == "is_active_customer")
    assert accepts_type(column, pa.float64())
    # When validated
    loaded = validate_batch(batch_with(is_active_customer=pa.array([1.0, -0.0], pa.float64())), 0)
    refused = validate_batch(batch_with(is_active_customer=pa.array([float("nan"), 0.0], pa.float64())), 0)
    # Then 1.0 is true and -0.0 false, and NaN is rejected with a reason
    assert loaded.valid_rows.column("is_active_customer").to_pylist() == [True, False]
    assert [row.reasons for row in refused.rejected_rows] == ["is_active_customer is not a boolean (true/false or 0/1)"]
