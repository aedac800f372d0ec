"""Is the table equal to the file? Row checksums from the file (untimed) against one SQL pass.

Expected values come from the test suite's own oracle (tests.integration.conftest.
expected_rows: plain Python, not the ingest's code); each row becomes one text, the same
text MariaDB's CONCAT_WS gives for the stored row, and its CRC32. A table equals a state
when the count and the sum of CRC32s match.
"""

from __future__ import annotations

import datetime as dt
import decimal
import zlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from functions.ingest.columns import COLUMN_NAMES

SEPARATOR, NULL_MARK = "\x1f", "\x1e"
BATCH_ROWS = 50_000
Fingerprints = dict[str, int]  # key -> CRC32 of the row's text


def _text(value: Any) -> str:
    if value is None:
        return NULL_MARK
    if isinstance(value, decimal.Decimal):
        return f"{abs(value) if value.is_zero() else value:.4f}"  # MariaDB shows no negative zero
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def file_fingerprints(path: Path) -> Fingerprints:
    """Every row of a Parquet file as the table must hold it: key -> CRC32."""
    from tests.integration.conftest import expected_rows  # the suite's oracle

    found: Fingerprints = {}
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
        for key, row in expected_rows(pa.Table.from_batches([batch])).items():
            found[key] = zlib.crc32(SEPARATOR.join(_text(row[name]) for name in COLUMN_NAMES).encode())
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
