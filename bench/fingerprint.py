"""Is the table equal to the file? Row checksums from the file (untimed) against one SQL pass.

Expected values follow the rules of the test suite's oracle (tests.integration.conftest.
expected_rows), computed per column from the file, not by the ingest's code; each row
becomes one text, the text MariaDB's CONCAT_WS gives for the stored row, and its CRC32.
A table equals a state when the count and the sum of CRC32s match.
"""

from __future__ import annotations

import datetime as dt
import decimal
import zlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from functions.ingest.columns import COLUMN_NAMES

SEPARATOR, NULL_MARK = "\x1f", "\x1e"
BATCH_ROWS = 50_000
RATE_STEP = decimal.Decimal("0.0001")
Fingerprints = dict[str, int]  # key -> CRC32 of the row's text


def _text(value: Any) -> str:
    if value is None:
        return NULL_MARK
    if isinstance(value, decimal.Decimal):
        return f"{abs(value) if value.is_zero() else value:.4f}"  # MariaDB shows no negative zero
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _column_texts(name: str, values: pa.ChunkedArray) -> list[str]:
    """One column of a file batch as the texts MariaDB shows for what the table stores.

    The rules of the suite's oracle (expected_rows), done per column: whole numbers as
    digits, booleans as 0/1, timestamps in UTC cut to the second, rates at 4 places
    rounded half up (per value, with Decimal, exactly as the oracle does).
    """
    data_type = values.type
    if name == "ee_growth_rate":
        return [
            _text(None if value is None else decimal.Decimal(str(value)).quantize(RATE_STEP, rounding=decimal.ROUND_HALF_UP))
            for value in values.to_pylist()
        ]
    if pa.types.is_timestamp(data_type):
        if data_type.tz is not None:
            values = pc.cast(values, pa.timestamp(data_type.unit))  # the UTC wall time
        values = pc.cast(pc.floor_temporal(values, unit="second"), pa.timestamp("s"))
    elif pa.types.is_boolean(data_type):
        values = pc.if_else(values, "1", "0")
    elif pa.types.is_decimal(data_type) or pa.types.is_floating(data_type):
        values = pc.cast(values, pa.int64())
    texts = pc.fill_null(pc.cast(values, pa.string()), NULL_MARK)
    text_values: list[str] = texts.to_pylist()
    return text_values


def file_fingerprints(path: Path) -> Fingerprints:
    """Every row of a Parquet file as the table must hold it: key -> CRC32."""
    found: Fingerprints = {}
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
        table = pa.Table.from_batches([batch])
        by_name = {{"company_id": "legacy_company_id"}.get(name.lower(), name.lower()): name for name in table.column_names}
        columns = [_column_texts(name, table.column(by_name[name])) for name in COLUMN_NAMES]
        for row in zip(*columns, strict=True):
            found[row[0]] = zlib.crc32(SEPARATOR.join(row).encode())
    return found


def state_of(fingerprints: Fingerprints) -> tuple[int, int]:
    return len(fingerprints), sum(fingerprints.values())


TABLE_STATE_SQL = (
    "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS(CHAR(31), "
    + ", ".join(f"COALESCE({name}, CHAR(30))" for name in COLUMN_NAMES)
    + "))), 0) FROM company_upsell_signals"
)


def expected_states(day_one: Path, day_two_a: Path, day_two_b: Path) -> dict[str, tuple[int, int]]:
    """(rows, checksum) each scenario must leave (bench.scenarios): MISSING_ROWS=keep keeps absent rows."""
    one, two_a, two_b = file_fingerprints(day_one), file_fingerprints(day_two_a), file_fingerprints(day_two_b)
    return {
        "first_load": state_of(one),
        "resync": state_of(one),
        "day_two_a": state_of(one | two_a),
        "day_two_b": state_of(one | two_b),  # from the day-one table, restored
        "day_two_a_delete": state_of(two_a),
    }
