"""An older date skips validating a newer file whose key column alone shows none of its companies.

The skip is sound only if the key column, read alone, finds every key a valid row has, as
validation reads it, whatever wrote the file and whatever type holds the key.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from functions.ingest.columns import KEY_COLUMN
from functions.ingest.parquet_reader import SignalFile
from functions.ingest.validation import validate_batch
from tests.factories import snowflake_table, write_duckdb, write_pyarrow, write_spark_style


def valid_keys(signal_file: SignalFile) -> list[str]:
    duplicates = signal_file.duplicate_keys()
    keys: list[str] = []
    for first_row, batch in signal_file.batches(0, 100):
        keys.extend(validate_batch(batch, first_row, duplicates).valid_rows[KEY_COLUMN].to_pylist())
    return keys


@pytest.mark.parametrize("writer", [write_pyarrow, write_duckdb, write_spark_style], ids=["pyarrow", "duckdb", "spark"])
def test_the_key_column_alone_finds_every_key_a_valid_row_has_and_none_the_file_lacks(
    writer: Callable[[pa.Table, Path], Path], tmp_path: Path
) -> None:
    # Given a file as each writer writes it (Spark's keys read back as a dictionary)
    signal_file = SignalFile(writer(snowflake_table(300, seed=5), tmp_path / "signals.parquet"))
    keys = valid_keys(signal_file)
    assert len(keys) == 300

    # Then every valid row's key is found, alone or among keys the file lacks
    for key in keys[::7]:
        assert signal_file.key_column_may_hold(pa.array([key])), key
        assert signal_file.key_column_may_hold(pa.array(["no-such-company", key])), key
    # And a key the file lacks, even one differing only by a space or a letter's case, is not
    absent = ["no-such-company", keys[0] + " ", keys[1].swapcase() if keys[1].swapcase() != keys[1] else keys[1] + "x"]
    assert not signal_file.key_column_may_hold(pa.array(absent))
    assert not signal_file.key_column_may_hold(pa.array([], pa.string()))


@pytest.mark.parametrize(
    "keys",
    [
        pa.array([101, 102, 103], pa.int64()),
        pa.array([101, 102, 103], pa.int32()).dictionary_encode(),
        pa.array(["101", "102", "103"], pa.large_string()),
        pa.array([b"101", b"102", b"103"], pa.binary()),
        pa.array([b"101", b"\xff\xfe", b"103"], pa.binary()),
    ],
    ids=["int64", "dictionary of int32", "large_string", "binary", "binary with bytes not UTF-8"],
)
def test_keys_of_any_accepted_type_are_compared_as_validation_reads_them(keys: pa.Array, tmp_path: Path) -> None:
    # Given a file whose key column has this type
    table = snowflake_table(3, seed=6)
    table = table.set_column(table.column_names.index("CDMS_CANONICAL_COMPANY_ID"), "CDMS_CANONICAL_COMPANY_ID", keys)
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path)
    signal_file = SignalFile(path)

    # Then each valid row's key, as validation reads it, is found, and a key the file lacks is not
    found = valid_keys(signal_file)
    assert "103" in found
    assert all(signal_file.key_column_may_hold(pa.array([key])) for key in found)
    assert not signal_file.key_column_may_hold(pa.array(["1030", "10", "104"]))
