"""Open a signals Parquet file, map its columns, and stream it by record batch.

The file is read batch by batch through a small buffer, so memory stays flat however
large the file is. Column names match case-insensitively; extra columns are ignored (and
reported); a missing required column or an unusable type is a SchemaError.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from functions.ingest.columns import KEY_COLUMN, SIGNAL_COLUMNS
from functions.ingest.duplicate_keys import find_duplicate_keys
from functions.ingest.text_checks import is_utf8
from functions.ingest.validation import accepts_type
from functions.shared.errors import CorruptFile, SchemaError

READ_BUFFER_BYTES = 1 << 20
READ_KEYS_ROWS = 65_536


@dataclass(frozen=True)
class ColumnMapping:
    """Which file column feeds each table column, and which file columns are ignored."""

    source_for: dict[str, str]
    ignored: tuple[str, ...]


def map_columns(schema: pa.Schema) -> ColumnMapping:
    """Match the file's columns to the table's, case-insensitively, checking types."""
    by_lower_name: dict[str, str] = {}
    for name in schema.names:
        if name.lower() in by_lower_name:
            raise SchemaError(f"columns {by_lower_name[name.lower()]!r} and {name!r} differ only by case")
        by_lower_name[name.lower()] = name
    source_for: dict[str, str] = {}
    missing: list[str] = []
    wrong_types: list[str] = []
    for column in SIGNAL_COLUMNS:
        source = next((by_lower_name[alias] for alias in column.parquet_names if alias in by_lower_name), None)
        if source is None:
            missing.append(" or ".join(alias.upper() for alias in column.parquet_names))
            continue
        data_type = schema.field(source).type
        if not accepts_type(column, data_type):
            wrong_types.append(f"{source} has type {data_type}, not usable as {column.kind.value}")
        source_for[column.name] = source
    if missing or wrong_types:
        problems = ([f"missing required column(s): {', '.join(missing)}"] if missing else []) + wrong_types
        raise SchemaError("; ".join(problems))
    used = set(source_for.values())
    return ColumnMapping(source_for=source_for, ignored=tuple(name for name in schema.names if name not in used))


class SignalFile:
    """A local Parquet file of signals, readable from any row onwards."""

    def __init__(self, path: Path) -> None:
        try:
            # Buffered reads, not a memory map: mapped pages count as resident memory
            # and would grow with the file.
            self._file = pq.ParquetFile(
                path,
                memory_map=False,
                buffer_size=READ_BUFFER_BYTES,
                pre_buffer=False,
                # Spark and older Snowflake unloads write INT96; microseconds keep far dates in range.
                coerce_int96_timestamp_unit="us",
            )
        except (pa.ArrowInvalid, OSError) as error:
            raise CorruptFile(f"not a readable Parquet file: {error}") from error
        self.mapping = map_columns(self._file.schema_arrow)
        metadata = self._file.metadata
        self.num_rows: int = metadata.num_rows
        self._row_group_starts = [0]
        for index in range(metadata.num_row_groups):
            self._row_group_starts.append(self._row_group_starts[-1] + metadata.row_group(index).num_rows)

    def duplicate_keys(self) -> pa.Table:
        """Company ids that appear more than once in the whole file, with their counts.

        Reads the key column alone, batch by batch, a few times (duplicate_keys.py), so
        every run, resumed or not, rejects every copy of a duplicated key, in whichever
        chunk it is, and memory does not grow with the file.
        """
        found = find_duplicate_keys(self._key_batches, self.num_rows)
        # A key that is not UTF-8 is rejected for that in every copy; validation compares text keys only.
        return found.filter(pc.fill_null(is_utf8(pc.cast(found["key"], pa.binary())), False))

    def _key_batches(self) -> Iterator[pa.Array]:
        source = self.mapping.source_for[KEY_COLUMN]
        try:
            for batch in self._file.iter_batches(batch_size=READ_KEYS_ROWS, columns=[source], use_threads=False):
                yield batch.column(0)
        except (pa.ArrowInvalid, OSError) as error:
            raise CorruptFile(f"Parquet file unreadable while reading {source}: {error}") from error

    def batches(self, start_row: int, batch_rows: int) -> Iterator[tuple[int, pa.RecordBatch]]:
        """Yield (first_row, batch) from `start_row` on, columns renamed to the table's names."""
        if start_row >= self.num_rows:
            return
        first_group = bisect.bisect_right(self._row_group_starts, start_row) - 1
        position = self._row_group_starts[first_group]
        sources = list(self.mapping.source_for.values())
        targets = list(self.mapping.source_for.keys())
        groups = list(range(first_group, self._file.metadata.num_row_groups))
        try:
            # use_threads=False: parallel column decoding held ~50 MB more at peak for little gain
            # (Lambda at this size has one or two vCPUs, and the next chunk is already prepared
            # on a thread of its own while the current one loads).
            for batch in self._file.iter_batches(batch_size=batch_rows, row_groups=groups, columns=sources, use_threads=False):
                batch_start = position
                position += batch.num_rows
                if position <= start_row:
                    continue
                if batch_start < start_row:
                    yield start_row, pa.RecordBatch.from_arrays(batch.slice(start_row - batch_start).columns, names=targets)
                else:
                    yield batch_start, pa.RecordBatch.from_arrays(batch.columns, names=targets)
        except (pa.ArrowInvalid, OSError) as error:
            raise CorruptFile(f"Parquet file unreadable at row {position}: {error}") from error
