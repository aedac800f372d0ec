"""Files as other writers make them: Snowflake's NUMBER keys, Spark's INT96 and page checksums, view types,
legacy column names, zone names the tz database lacks. Each loads exactly, rejects a row, or is refused by name."""

from __future__ import annotations

import decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from functions.ingest.parquet_reader import SignalFile
from functions.ingest.validation import validate_batch
from tests.factories import snowflake_table

D = decimal.Decimal


def file_with(tmp_path: Path, name: str, values: pa.Array) -> Path:
    """A 4-row Snowflake-like file whose column `name` is replaced by `values`, written by pyarrow."""
    table = snowflake_table(len(values))
    table = table.set_column(table.schema.get_field_index(name), name, values)
    path = tmp_path / "data.parquet"
    pq.write_table(table, path)
    return path


def read_as_the_ingest_does(path: Path) -> tuple[pa.Table, dict[int, str]]:
    signal_file = SignalFile(path)
    try:
        duplicates = signal_file.duplicate_keys()
        valid, rejected = [], {}
        for first_row, batch in signal_file.batches(0, 25_000):
            validated = validate_batch(batch, first_row, duplicates)
            valid.append(validated.valid_rows)
            rejected.update({row.source_row: row.reasons for row in validated.rejected_rows})
        return pa.concat_tables(valid), rejected
    finally:
        signal_file.close()


def test_a_decimal_boolean_a_hair_above_one_is_rejected_not_loaded_as_true(tmp_path: Path) -> None:
    # Given a boolean column unloaded as NUMBER(38,20), one value 1.00000000000000000001 (not 0 or 1)
    flags = pa.array([D("1.00000000000000000001"), D(1), D(0), None], pa.decimal128(38, 20))
    valid, rejected = read_as_the_ingest_does(file_with(tmp_path, "IS_ACTIVE_CUSTOMER", flags))
    # Then that row is rejected, as 2 or 0.5 would be (counts already get this right: see
    # test_fractions_a_float_cannot_see_and_fractions_of_a_pure_fraction_type_are_rejected)
    assert rejected == {0: "is_active_customer is not a boolean (true/false or 0/1)"}
    assert valid.column("is_active_customer").to_pylist() == [True, False, None]


def test_a_snowflake_number_key_column_loads_like_an_integer_one(tmp_path: Path) -> None:
    # Given the key unloaded from a Snowflake NUMBER(38,0) column: DECIMAL(38,0), as the counts are
    # (an int64 key column is accepted: see the integer-key-column shape in test_hostile_inputs)
    keys = pa.array([D(1000000000001), D(1000000000002), D(1000000000003), D(1000000000004)], pa.decimal128(38, 0))
    valid, rejected = read_as_the_ingest_does(file_with(tmp_path, "CDMS_CANONICAL_COMPANY_ID", keys))
    # Then the ids load as their digits (today: SchemaError, the whole file refused)
    assert rejected == {}
    assert valid.column("cdms_canonical_company_id").to_pylist() == [str(key) for key in keys.to_pylist()]


def test_a_binary_view_text_column_loads_like_a_binary_one(tmp_path: Path) -> None:
    # Given a text column written as binary_view (pyarrow and polars keep the view type in the
    # file's Arrow schema); plain binary and string_view are accepted
    table = snowflake_table(4)
    products = pc.cast(table["CORE_PRODUCT"], pa.binary_view())
    valid, rejected = read_as_the_ingest_does(file_with(tmp_path, "CORE_PRODUCT", products))
    # Then it loads as text (today: SchemaError "CORE_PRODUCT has type binary_view, not usable as string")
    assert rejected == {}
    assert valid.column("core_product").to_pylist() == table["CORE_PRODUCT"].to_pylist()


def test_a_column_name_that_is_not_utf8_is_a_corrupt_file_not_a_raw_unicode_error(tmp_path: Path) -> None:
    # Given a file with an extra column whose name a legacy (Latin-1) writer stored as b"EXTRA_\xe9X"
    # (pyarrow writes "EXTRA_XX"; the footer's bytes of the name are patched, same length)
    table = snowflake_table(10).append_column("EXTRA_XX", pa.array(["x"] * 10))
    path = tmp_path / "data.parquet"
    pq.write_table(table, path, store_schema=False)
    raw = path.read_bytes()
    assert raw.count(b"EXTRA_XX") == 2  # the schema element and the column chunk's path
    path.write_bytes(raw.replace(b"EXTRA_XX", b"EXTRA_\xe9X"))
    # When the ingest opens it
    # Then it is refused as a permanent error naming the problem (CorruptFile or SchemaError);
    # today a UnicodeDecodeError escapes, which the service and handler treat as unforeseen:
    # Lambda retries it, then dead-letters it with "'utf-8' codec can't decode byte 0xe9 ..."
    from functions.shared.errors import PermanentError

    with pytest.raises(PermanentError):
        SignalFile(path)


def test_two_ignored_columns_differing_only_by_case_do_not_refuse_the_file(tmp_path: Path) -> None:
    # Given a valid file with two extra columns, "note" and "NOTE" (DuckDB, polars and Spark with
    # spark.sql.caseSensitive allow both); extra columns are to be ignored (SPEC: Read)
    table = snowflake_table(4).append_column("note", pa.array(["a"] * 4)).append_column("NOTE", pa.array(["b"] * 4))
    path = tmp_path / "data.parquet"
    pq.write_table(table, path)
    # When read; Then every row loads (today: SchemaError "columns 'note' and 'NOTE' differ only by case")
    valid, rejected = read_as_the_ingest_does(path)
    assert (valid.num_rows, rejected) == (4, {})


def test_a_page_whose_crc_does_not_match_is_a_corrupt_file_not_altered_values(tmp_path: Path) -> None:
    # Given a file written with page checksums (parquet-mr's parquet.page.write-checksum.enabled, on by
    # default in recent releases; pyarrow with write_page_checksum=True) in which one bit of EE_GROWTH's page flipped after writing
    table = snowflake_table(100)
    path = tmp_path / "data.parquet"
    pq.write_table(table, path, write_page_checksum=True, compression="none", use_dictionary=False)
    metadata = pq.ParquetFile(path).metadata
    chunk = metadata.row_group(0).column(metadata.schema.names.index("EE_GROWTH"))
    raw = bytearray(path.read_bytes())
    raw[chunk.data_page_offset + chunk.total_compressed_size - 3] ^= 0x01
    path.write_bytes(bytes(raw))
    # When read as the ingest does; Then it is refused as corrupt (pyarrow's page_checksum_verification
    # says "CRC checksum verification failed"); today the last row's ee_growth loads as -66004, not -468
    from functions.shared.errors import CorruptFile

    with pytest.raises(CorruptFile):
        valid, _ = read_as_the_ingest_does(path)
        changed = [
            (row, before, after)
            for row, (before, after) in enumerate(
                zip(pc.cast(table["EE_GROWTH"], pa.int64()).to_pylist(), valid.column("ee_growth").to_pylist(), strict=True)
            )
            if before != after
        ]
        raise AssertionError(f"loaded without a word, values changed: {changed}")


def test_an_int96_timestamp_past_microseconds_range_is_rejected_not_wrapped_into_range(tmp_path: Path) -> None:
    # Given an INT96 MODEL_UPDATED_AT (Spark, Impala, older Snowflake unloads) whose Julian day is
    # 215,965,026 (about year 586,000): read at microseconds it overflows int64 and wraps
    import datetime as dt
    import struct

    table = snowflake_table(3)
    moment = dt.datetime(2026, 1, 2, 3, 4, 5)
    table = table.set_column(
        table.schema.get_field_index("MODEL_UPDATED_AT"), "MODEL_UPDATED_AT", pa.array([moment] * 3, pa.timestamp("ms"))
    )
    path = tmp_path / "data.parquet"
    pq.write_table(
        table, path, use_deprecated_int96_timestamps=True, compression="none", use_dictionary=False, store_schema=False
    )
    julian_day = (moment.date() - dt.date(1970, 1, 1)).days + 2_440_588
    nanos_of_day = (3 * 3600 + 4 * 60 + 5) * 10**9
    encoded = struct.pack("<qI", nanos_of_day, julian_day)
    raw = path.read_bytes()
    assert raw.count(encoded) == 3
    path.write_bytes(raw.replace(encoded, struct.pack("<qI", nanos_of_day, 215_965_026), 1))
    # When read as the ingest does
    valid, rejected = read_as_the_ingest_does(path)
    # Then row 0 is rejected as outside TIMESTAMP's range; today it loads as 2026-01-02 19:02:15
    assert rejected == {0: "model_updated_at outside TIMESTAMP range (1970-01-01 00:00:01 to 2038-01-19 03:14:07 UTC)"}
    assert valid.column("model_updated_at").to_pylist() == [moment, moment]


@pytest.mark.parametrize("zone", ["Z", "utc", "US/Pacific-New"])
def test_a_rejected_row_in_a_file_whose_timestamps_name_an_unknown_zone_is_one_rejected_row(tmp_path: Path, zone: str) -> None:
    # Given zoned timestamps whose Arrow type names a zone the tz database lacks ("Z" and "utc" from
    # writers that spell UTC so, a zone name since removed from tzdata), all in range, and one key of 65 characters
    import datetime as dt

    table = snowflake_table(3)
    utc = pa.array([dt.datetime(2026, 1, 2, 3, 4, 5)] * 3, pa.timestamp("ms", tz="UTC"))
    zoned = pa.Array.from_buffers(pa.timestamp("ms", tz=zone), 3, utc.buffers())
    table = table.set_column(table.schema.get_field_index("MODEL_UPDATED_AT"), "MODEL_UPDATED_AT", zoned)
    keys = table["CDMS_CANONICAL_COMPANY_ID"].to_pylist()
    keys[1] = "k" * 65
    table = table.set_column(
        table.schema.get_field_index("CDMS_CANONICAL_COMPANY_ID"), "CDMS_CANONICAL_COMPANY_ID", pa.array(keys)
    )
    path = tmp_path / "data.parquet"
    pq.write_table(table, path)
    # When read as the ingest does (the valid rows alone load fine: the zone is only looked up to
    # describe a rejected row's original values)
    valid, rejected = read_as_the_ingest_does(path)
    # Then that row is one rejected row; today pyarrow.lib.ArrowInvalid "Cannot locate or parse
    # timezone 'Z'" escapes from rejected_values.original_values and fails the whole date (unforeseen: retried, dead-lettered)
    assert rejected == {1: "cdms_canonical_company_id longer than 64 characters"}
    assert valid.num_rows == 2
