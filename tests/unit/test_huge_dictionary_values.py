"""A tiny file whose text column is one dictionary entry of megabytes, pointed at by many rows.

Decoded naively, every row copies the value: a 5 MB value in a 25,000-row batch is 125 GB,
and Lambda kills the function at its memory size on every retry. Read as the ingest reads
(open, duplicate keys, batches of 25,000 rows, validation) in a child process watched as the
local Lambda watches one (resident memory sampled, SIGKILL past 2,048 MB), the file's rows
must come out rejected as too long, in bounded memory.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from functions.ingest.parquet_reader import SignalFile
from functions.ingest.text_checks import decoded_without_huge
from functions.shared.errors import CorruptFile
from tests.factories import snowflake_table

ROWS = 60_000
HUGE_BYTES = 5 << 20
LAMBDA_MEMORY_MB = 2048
BOUND_MB = 1024
REPO = Path(__file__).resolve().parents[2]

READ_AS_THE_INGEST_DOES = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from functions.ingest.parquet_reader import SignalFile
    from functions.ingest.validation import validate_batch
    signal_file = SignalFile(Path(sys.argv[1]))
    duplicates = signal_file.duplicate_keys()
    valid, reasons = 0, {}
    for first_row, batch in signal_file.batches(0, 25_000):
        validated = validate_batch(batch, first_row, duplicates)
        valid += validated.valid_rows.num_rows
        for row in validated.rejected_rows:
            reasons[row.reasons] = reasons.get(row.reasons, 0) + 1
            original = json.loads(row.original_values_json)
    print(json.dumps({"valid": valid, "reasons": reasons, "original": original}))
    """
)


def huge_in_every_other_row(table: pa.Table, name: str, value_type: pa.DataType) -> pa.Table:
    """`name` as a dictionary: the file's own values, and a 5 MB one that every other row points at instead."""
    # The key keeps its own (distinct) values; another column one short value.
    legal = table[name].combine_chunks() if name == "CDMS_CANONICAL_COMPANY_ID" else pa.array(["peo"])
    huge = len(legal)
    indices = pa.array([huge if row % 2 else min(row, huge - 1) for row in range(table.num_rows)], pa.int32())
    dictionary = pa.concat_arrays([legal.cast(value_type), pa.array(["x" * HUGE_BYTES], value_type)])
    index = table.schema.get_field_index(name)
    return table.set_column(index, name, pa.DictionaryArray.from_arrays(indices, dictionary))


def run_watched(script: str, path: Path) -> tuple[str, int]:
    """`script` run on `path` in a child, killed past Lambda's memory size, as the local Lambda watches one: its output and peak MB.

    Sampled from outside: the child's own ru_maxrss would count the test process it was forked from.
    """
    child = subprocess.Popen([sys.executable, "-c", script, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    peak_mb = 0
    while child.poll() is None:
        try:
            status = Path(f"/proc/{child.pid}/status").read_text()
        except FileNotFoundError:
            break
        rss_mb = next((int(line.split()[1]) // 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        peak_mb = max(peak_mb, rss_mb)
        if rss_mb > LAMBDA_MEMORY_MB:
            child.send_signal(signal.SIGKILL)
        time.sleep(0.005)
    out, _ = child.communicate()
    assert child.returncode == 0, f"killed or failed (exit {child.returncode}) at {peak_mb} MB resident"
    return out, peak_mb


def read_watched(path: Path) -> dict[str, object]:
    """The ingest's read of `path` in a watched child; its report."""
    out, peak_mb = run_watched(READ_AS_THE_INGEST_DOES, path)
    return dict(json.loads(out)) | {"peak_mb": peak_mb}


@pytest.mark.parametrize(
    ("column", "value_type", "reason", "nested_first"),
    [
        ("COMPANY_ID", pa.string(), "legacy_company_id longer than 64 characters", False),
        ("CDMS_CANONICAL_COMPANY_ID", pa.string(), "cdms_canonical_company_id longer than 64 characters", False),
        ("CORE_PRODUCT", pa.binary(), "core_product longer than 16 characters", False),
        ("COMPANY_ID", pa.string(), "legacy_company_id longer than 64 characters", True),
    ],
    ids=["legacy-id", "key", "binary-column", "after-an-ignored-nested-column"],
)
def test_a_huge_dictionary_value_in_many_rows_is_rejected_in_bounded_memory(
    tmp_path: Path, column: str, value_type: pa.DataType, reason: str, nested_first: bool
) -> None:
    # Given a 5 MB file: a 5 MB dictionary entry that half its 60,000 rows point at (150 GB decoded);
    # or the same after an ignored column of three leaves, which moves every column chunk's number,
    # written without pyarrow's own schema, as other writers do
    path = tmp_path / "data.parquet"
    table = huge_in_every_other_row(snowflake_table(ROWS, seed=11), column, value_type)
    if nested_first:
        table = table.add_column(0, "EXTRA", pa.array([{"a": 1, "b": "x", "c": 2.0}] * ROWS))
    pq.write_table(table, path, compression="zstd", dictionary_pagesize_limit=64 << 20, store_schema=not nested_first)

    # When it is read and validated as the ingest does, watched as Lambda would
    report = read_watched(path)

    # Then it is not killed, and stays far below the memory size
    assert int(report["peak_mb"]) < BOUND_MB  # type: ignore[call-overload]
    # and exactly the rows pointing at the huge value are rejected as too long, the rest valid
    assert report["valid"] == ROWS // 2
    assert report["reasons"] == {reason: ROWS // 2}
    # and a rejected row keeps the value's first KiB, marked with its real size
    assert str(report["original"][column.lower() if column != "COMPANY_ID" else "legacy_company_id"]).endswith(  # type: ignore[index]
        f"…[truncated, {HUGE_BYTES} bytes]"
    )


@pytest.mark.parametrize(
    ("shape", "says"),
    [
        ("four-plain-columns", r"row group 0 holds 10000\d{5} bytes of text for 1250 rows"),
        ("sixty-huge-dictionary-values", r"row group 0 holds 31\d{7} bytes of text for 60000 rows"),
    ],
)
def test_a_row_group_of_far_more_text_than_memory_and_legal_values_allow_is_refused_naming_it(
    tmp_path: Path, shape: str, says: str
) -> None:
    # Given a file of a few megabytes whose one row group holds nearly 1 GB of plain text in four
    # columns (200 KB values), or 300 MB of dictionary (sixty 5 MB values half its rows point at):
    # its pages would be decoded at once, whatever the batch
    path = tmp_path / "data.parquet"
    if shape == "four-plain-columns":
        table = snowflake_table(1_250, seed=12)
        for name in ("COMPANY_ID", "CORE_PRODUCT", "DEBUT_PRODUCT_TIER", "CURRENT_PRODUCT_TIER"):
            table = table.set_column(table.schema.get_field_index(name), name, pa.array(["y" * 200_000] * 1_250))
        pq.write_table(table, path, compression="zstd", use_dictionary=False)
    else:
        table = snowflake_table(ROWS, seed=13)
        dictionary = pa.concat_arrays([pa.array(["peo"]), pa.array([f"{i:02}" + "x" * HUGE_BYTES for i in range(60)])])
        indices = pa.array([1 + row % 60 if row % 2 else 0 for row in range(ROWS)], pa.int32())
        legacy = pa.DictionaryArray.from_arrays(indices, dictionary)
        table = table.set_column(table.schema.get_field_index("COMPANY_ID"), "COMPANY_ID", legacy)
        pq.write_table(table, path, compression="zstd", dictionary_pagesize_limit=512 << 20)

    # When it is opened, Then it is refused before a row is decoded, naming the row group and its figures
    with pytest.raises(CorruptFile, match=says):
        SignalFile(path)


def test_plain_text_far_longer_than_any_column_across_row_groups_is_read_in_smaller_batches_and_rejected(
    tmp_path: Path,
) -> None:
    # Given one text column of 200 KB plain values in eight row groups of 500 rows (100 MB each,
    # under the row group's bound), 800 MB decoded were they read 25,000 rows at a time
    path = tmp_path / "data.parquet"
    table = snowflake_table(4_000, seed=12)
    table = table.set_column(table.schema.get_field_index("COMPANY_ID"), "COMPANY_ID", pa.array(["y" * 200_000] * 4_000))
    pq.write_table(table, path, compression="zstd", use_dictionary=False, row_group_size=500)

    # When it is read and validated as the ingest does, watched as Lambda would
    report = read_watched(path)

    # Then it is not killed: every row is rejected as too long, in bounded memory
    assert int(report["peak_mb"]) < BOUND_MB  # type: ignore[call-overload]
    assert (report["valid"], report["reasons"]) == (0, {"legacy_company_id longer than 64 characters": 4_000})


def test_dictionary_values_a_little_longer_than_any_column_holds_are_rejected_in_bounded_memory(tmp_path: Path) -> None:
    # Given every text column one 4,096-byte dictionary value that all 60,000 rows point at (16
    # times the longest legal value, 20 KB of text a row once decoded), in a file of a few megabytes
    path = tmp_path / "data.parquet"
    table = snowflake_table(ROWS, seed=11)
    for name in ("CDMS_CANONICAL_COMPANY_ID", "COMPANY_ID", "CORE_PRODUCT", "DEBUT_PRODUCT_TIER", "CURRENT_PRODUCT_TIER"):
        column = pa.DictionaryArray.from_arrays(pa.array([0] * ROWS, pa.int32()), pa.array([name[0] * 4096]))
        table = table.set_column(table.schema.get_field_index(name), name, column)
    pq.write_table(table, path, compression="zstd")
    assert path.stat().st_size < 8 << 20

    # When it is read and validated as the ingest does, watched as Lambda would
    report = read_watched(path)

    # Then every row is rejected, in bounded memory: no row holds a copy of the values
    assert int(report["peak_mb"]) < BOUND_MB  # type: ignore[call-overload]
    assert report["valid"] == 0
    assert sum(report["reasons"].values()) == ROWS  # type: ignore[attr-defined]


OPEN_AS_THE_INGEST_DOES = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from functions.ingest.parquet_reader import SignalFile
    from functions.shared.errors import CorruptFile
    try:
        SignalFile(Path(sys.argv[1]))
    except CorruptFile as error:
        print(error)
    """
)


def test_a_row_group_whose_dictionary_alone_would_not_fit_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    # Given a file of a few megabytes whose one row group holds a dictionary of a hundred 5 MB
    # values (500 MB decoded, several times that while decoding)
    path = tmp_path / "data.parquet"
    rows = 60_000
    table = snowflake_table(rows, seed=13)
    dictionary = pa.concat_arrays([pa.array(["peo"]), pa.array([f"{i:03}" + "x" * HUGE_BYTES for i in range(100)])])
    indices = pa.array([1 + row % 100 if row % 2 else 0 for row in range(rows)], pa.int32())
    legacy = pa.DictionaryArray.from_arrays(indices, dictionary)
    table = table.set_column(table.schema.get_field_index("COMPANY_ID"), "COMPANY_ID", legacy)
    pq.write_table(table, path, compression="zstd", dictionary_pagesize_limit=2000 << 20, store_schema=False)
    del table, dictionary, legacy
    assert path.stat().st_size < 8 << 20

    # When it is opened in a process watched as Lambda would
    out, peak_mb = run_watched(OPEN_AS_THE_INGEST_DOES, path)

    # Then it is refused by its metadata, naming the row group, without decoding the dictionary
    assert out.startswith("row group 0 holds "), out
    assert peak_mb < BOUND_MB // 4, peak_mb


def test_a_dictionary_of_numbers_in_a_text_column_is_decoded_as_numbers() -> None:
    # Given a text column that came as a dictionary of integers (legacy ids some writers keep as numbers)
    values = pa.DictionaryArray.from_arrays(pa.array([1, 0, 1], pa.int32()), pa.array([7, 123456789], pa.int64()))

    # When it is decoded for validation, Then each row gets its number, none taken for a huge text
    decoded, huge = decoded_without_huge(values)
    assert (decoded.to_pylist(), huge) == ([123456789, 7, 123456789], None)
