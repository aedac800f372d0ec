"""One bad value is one rejected row: invalid UTF-8, null-typed columns, huge values (no database)."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from functions.ingest import validation
from functions.ingest.columns import KEY_COLUMN, SIGNAL_COLUMNS, Kind
from functions.ingest.parquet_reader import SignalFile
from functions.ingest.text_checks import ORIGINAL_VALUE_MAX_BYTES
from functions.ingest.validation import REASONS_MAX_CHARS, validate_batch
from tests.factories import snowflake_table
from tests.unit.test_validation import batch_with

KEY = "CDMS_CANONICAL_COMPANY_ID"


def unchecked_strings(values: list[bytes | None], data_type: pa.DataType | None = None) -> pa.Array:
    """A string array holding these bytes as they are, invalid UTF-8 included, as a Parquet
    reader hands over a BYTE_ARRAY (String) column without validating it."""
    data_type = data_type or pa.string()
    as_binary = pa.array(values, pa.large_binary() if data_type == pa.large_string() else pa.binary())
    return pa.Array.from_buffers(data_type, len(as_binary), as_binary.buffers())


@pytest.mark.parametrize("data_type", [pa.string(), pa.large_string(), pa.binary()], ids=["string", "large_string", "binary"])
def test_invalid_utf8_rejects_its_row_with_a_reason_and_a_readable_original(data_type: pa.DataType) -> None:
    # Given a legacy id whose first value is not UTF-8 (0xff cannot start a sequence)
    values = [b"bad\xff\xfeid", b"peo_2"]
    legacy_ids = pa.array(values, pa.binary()) if data_type == pa.binary() else unchecked_strings(values, data_type)

    # When the batch is validated
    result = validate_batch(batch_with(legacy_company_id=legacy_ids), 40)

    # Then that row alone is rejected, its bytes shown hex-escaped, and the other row loads
    assert [(row.source_row, row.reasons) for row in result.rejected_rows] == [(40, "legacy_company_id is not valid UTF-8")]
    assert json.loads(result.rejected_rows[0].original_values_json)["legacy_company_id"] == "bad\\xff\\xfeid"
    assert result.valid_rows.column("legacy_company_id").to_pylist() == ["peo_2"]
    assert result.valid_rows.schema.field("legacy_company_id").type == pa.string()


@pytest.mark.parametrize(
    "bad_bytes",
    [b"\xc3", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ok\x80"],
    ids=["truncated", "overlong", "surrogate", "beyond_unicode", "stray_continuation"],
)
def test_every_kind_of_invalid_utf8_is_caught(bad_bytes: bytes) -> None:
    result = validate_batch(batch_with(core_product=unchecked_strings([bad_bytes, "é€😀".encode()])), 0)
    assert [row.reasons for row in result.rejected_rows] == ["core_product is not valid UTF-8"]
    assert result.valid_rows.column("core_product").to_pylist() == ["é€😀"]


def test_an_invalid_utf8_key_is_rejected_as_such_not_as_blank() -> None:
    result = validate_batch(batch_with(cdms_canonical_company_id=unchecked_strings([b"cdms-\xff", b"cdms-2"])), 0)
    [rejected] = result.rejected_rows
    assert rejected.reasons == "cdms_canonical_company_id is not valid UTF-8"
    assert rejected.company_id == "cdms-\\xff"
    assert result.valid_rows.column(KEY_COLUMN).to_pylist() == ["cdms-2"]


def test_duplicate_keys_of_a_file_with_invalid_utf8_keys_are_found_without_crashing(tmp_path: Path) -> None:
    # Given a file whose key column holds an invalid key twice and a valid key twice
    file_table = snowflake_table(5)
    keys = unchecked_strings([b"cdms-\xff", b"cdms-\xff", b"cdms-1", b"cdms-1", b"cdms-3"])
    file_table = file_table.set_column(file_table.schema.get_field_index(KEY), KEY, keys)
    pq.write_table(file_table, tmp_path / "data.parquet")

    # When its duplicate keys are listed, the valid one is (the invalid ones are rejected as such)
    duplicates = SignalFile(tmp_path / "data.parquet").duplicate_keys()

    assert duplicates.to_pylist() == [{"key": "cdms-1", "copies": 2}]


NULL_TYPED = {
    Kind.STRING: ("core_product", pa.string()),
    Kind.INT: ("ee_growth", pa.int64()),
    Kind.BOOL: ("is_active_customer", pa.bool_()),
    Kind.RATE: ("ee_growth_rate", pa.decimal128(10, 4)),
    Kind.TIMESTAMP: ("last_hi_app_started_at", pa.timestamp("s")),
}


@pytest.mark.parametrize("kind", list(NULL_TYPED), ids=[kind.value for kind in NULL_TYPED])
def test_a_null_typed_column_becomes_nulls_of_the_columns_own_type(kind: Kind) -> None:
    # Given a column of Parquet's null type (pandas writes an all-None column so)
    name, stored_type = NULL_TYPED[kind]

    # When the batch is validated, both rows load with nulls of the column's own type
    result = validate_batch(batch_with(**{name: pa.nulls(2)}), 0)

    assert result.rejected_rows == []
    assert result.valid_rows.column(name).to_pylist() == [None, None]
    assert result.valid_rows.schema.field(name).type == stored_type


def test_every_column_null_typed_at_once_rejects_only_for_the_missing_key() -> None:
    result = validate_batch(batch_with(**{column.name: pa.nulls(2) for column in SIGNAL_COLUMNS}), 0)
    assert [row.reasons for row in result.rejected_rows] == ["blank or missing cdms_canonical_company_id"] * 2
    assert result.valid_rows.num_rows == 0


def test_a_huge_value_in_a_rejected_row_is_stored_capped_with_a_marker() -> None:
    # Given a 30 MB legacy id (far too long for VARCHAR(64)) and a 3,000-character key
    huge = "x" * (30 << 20)
    batch = batch_with(legacy_company_id=pa.array([huge, "peo_2"]), cdms_canonical_company_id=pa.array(["k" * 3000, "cdms-2"]))

    # When it is validated
    [rejected] = validate_batch(batch, 0).rejected_rows

    # Then its stored original holds about 1 KiB of each value and says how long it was
    originals = json.loads(rejected.original_values_json)
    assert originals["legacy_company_id"] == "x" * ORIGINAL_VALUE_MAX_BYTES + f"…[truncated, {30 << 20} bytes]"
    assert originals["cdms_canonical_company_id"] == "k" * ORIGINAL_VALUE_MAX_BYTES + "…[truncated, 3000 bytes]"
    assert originals["ee_growth"] == 1
    assert len(rejected.original_values_json.encode()) < 4 * ORIGINAL_VALUE_MAX_BYTES
    assert rejected.company_id == "k" * 255
    assert rejected.reasons == (
        "cdms_canonical_company_id longer than 64 characters; legacy_company_id longer than 64 characters"
    )


def test_a_cut_never_splits_a_character_and_short_values_are_whole() -> None:
    # Given a value of 2-byte characters whose byte cap falls inside one, and a short value
    long_value = "a" + "é" * ORIGINAL_VALUE_MAX_BYTES  # the cap's last byte is the first of an é
    batch = batch_with(core_product=pa.array([long_value, "peo"]), legacy_company_id=pa.array(["l" * 65, "peo_2"]))

    [rejected] = validate_batch(batch, 0).rejected_rows

    originals = json.loads(rejected.original_values_json)
    shown = "a" + "é" * (ORIGINAL_VALUE_MAX_BYTES // 2 - 1)
    assert originals["core_product"] == shown + f"…[truncated, {2 * ORIGINAL_VALUE_MAX_BYTES + 1} bytes]"
    assert originals["legacy_company_id"] == "l" * 65


def test_reasons_are_capped_with_a_marker(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a row where several columns are wrong, and a cap shorter than its reasons
    monkeypatch.setattr(validation, "REASONS_MAX_CHARS", 120)
    overrides = {column.name: pa.array(["z" * 100, "ok"]) for column in SIGNAL_COLUMNS if column.kind is Kind.STRING}

    # When it is validated
    [rejected] = validate_batch(batch_with(**overrides), 0).rejected_rows

    # Then its reasons fit the cap, begin as they were and say they were cut
    assert len(rejected.reasons) == 120
    assert rejected.reasons.startswith("cdms_canonical_company_id longer than 64 characters; legacy_company_id longer")
    assert rejected.reasons.endswith("…[truncated]")


def test_the_longest_possible_reasons_fit_the_rejects_column() -> None:
    # Given a row where every column is wrong, its key duplicated too
    overrides: dict[str, pa.Array] = {}
    for column in SIGNAL_COLUMNS:
        if column.kind is Kind.STRING:
            overrides[column.name] = pa.array(["z" * 100, "ok"])
        elif column.kind in (Kind.INT, Kind.BOOL):
            overrides[column.name] = pa.array([decimal.Decimal("0.5"), decimal.Decimal(1)], pa.decimal128(10, 1))
        elif column.kind is Kind.RATE:
            overrides[column.name] = pa.array([float("nan"), 0.5])
        else:
            overrides[column.name] = pa.array([dt.datetime(1960, 1, 1), None], pa.timestamp("s"))
    duplicates = pa.table({"key": pa.array(["z" * 100]), "copies": pa.array([1_000_000], pa.int64())})

    [rejected] = validate_batch(batch_with(**overrides), 0, duplicates).rejected_rows

    # Then they are all there, within VARCHAR(2048)
    assert rejected.reasons.count("; ") == len(SIGNAL_COLUMNS)
    assert len(rejected.reasons) <= REASONS_MAX_CHARS == 2048
