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

from functions.ingest.columns import KEY_COLUMN, SIGNAL_COLUMNS, Kind
from functions.ingest.duplicate_keys import find_duplicate_keys
from functions.ingest.text_checks import HUGE_VALUE_BYTES, is_text_type, is_utf8
from functions.ingest.validation import accepts_type
from functions.shared.errors import CorruptFile, SchemaError

READ_BUFFER_BYTES = 1 << 20
READ_KEYS_ROWS = 65_536
# The decoded text one batch may hold. A file's rows take about 100 bytes of text each; rows of
# values far longer than any column holds (rejected, every one) are read in smaller batches.
TEXT_BYTES_PER_BATCH = 64 << 20
# A row group's text pages may all be decoded at once, whatever the batch (a page holds as many
# values as the writer put in it). Past this much text, and past what legal values take, the
# file is refused: a 10M-row row group of legal values takes about 330 MB, 33 bytes a row.
TEXT_BYTES_PER_ROW_GROUP = 128 << 20
LEGAL_TEXT_BYTES_PER_ROW = sum(4 * (column.max_length or 0) + 4 for column in SIGNAL_COLUMNS if column.kind is Kind.STRING)
# The names (lower case) a column the table needs may have: only these must not clash by case.
_NEEDED_NAMES = frozenset(alias for column in SIGNAL_COLUMNS for alias in column.parquet_names)


@dataclass(frozen=True)
class ColumnMapping:
    """Which file column feeds each table column, and which file columns are ignored."""

    source_for: dict[str, str]
    ignored: tuple[str, ...]


def map_columns(schema: pa.Schema) -> ColumnMapping:
    """Match the file's columns to the table's, case-insensitively, checking types."""
    by_lower_name: dict[str, str] = {}
    for name in schema.names:
        if name.lower() in by_lower_name and name.lower() in _NEEDED_NAMES:
            raise SchemaError(f"columns {by_lower_name[name.lower()]!r} and {name!r} differ only by case")
        by_lower_name.setdefault(name.lower(), name)
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
            self._file = _open(path)
        except (pa.ArrowInvalid, OSError) as error:
            raise CorruptFile(f"not a readable Parquet file: {error}") from error
        except UnicodeDecodeError as error:
            raise CorruptFile(f"not a readable Parquet file: a column name is not UTF-8 ({error})") from error
        self.mapping = map_columns(self._file.schema_arrow)
        metadata = self._file.metadata
        self.num_rows: int = metadata.num_rows
        self._row_group_starts = [0]
        for index in range(metadata.num_row_groups):
            self._row_group_starts.append(self._row_group_starts[-1] + metadata.row_group(index).num_rows)
        text = _TextSizes(self._file, path, self.mapping)
        # A text column whose dictionary holds a huge value is read as a dictionary: each
        # row points at the value instead of copying it (validation rejects those rows).
        self.kept_as_dictionary = text.huge_columns
        if self.kept_as_dictionary:
            self._file.close()
            self._file = _open(path, read_dictionary=self.kept_as_dictionary)
        self._text_bytes_per_row, self._key_bytes_per_row = text.bytes_per_row, text.key_bytes_per_row

    def close(self) -> None:
        """Let the file go: a removed file's space returns only once no reader holds it open."""
        self._file.close()

    def duplicate_keys(self) -> pa.Table:
        """Company ids that appear more than once in the whole file, with their counts.

        Reads the key column alone, batch by batch, a few times (duplicate_keys.py), so
        every run, resumed or not, rejects every copy of a duplicated key, in whichever
        chunk it is, and memory does not grow with the file.
        """
        found = find_duplicate_keys(self._key_batches, self.num_rows)
        # A key that is not UTF-8 is rejected for that in every copy; validation compares text keys only.
        return found.filter(pc.fill_null(is_utf8(pc.cast(found["key"], pa.binary())), False))

    def key_column_may_hold(self, keys: pa.Array) -> bool:
        """Whether some row's key may be one of `keys` (text), read from the key column alone.

        Validation takes a key as found (an integer as its digits, text unchanged), so a file
        whose key column holds none of them has no valid row with one. A dictionary is judged
        by its values; a key column this cannot compare byte for byte answers True.
        """
        wanted = pc.cast(keys, pa.large_binary())
        for batch in self._key_batches():
            found = batch.dictionary if pa.types.is_dictionary(batch.type) else batch
            if pa.types.is_integer(found.type) or pa.types.is_decimal(found.type):  # a NUMBER(38,0) key: its digits
                found = pc.cast(found, pa.string())
            try:
                as_bytes = pc.cast(found, pa.large_binary())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                return True
            if pc.any(pc.is_in(as_bytes, value_set=wanted)).as_py():
                return True
        return False

    def _key_batches(self) -> Iterator[pa.Array]:
        source = self.mapping.source_for[KEY_COLUMN]
        all_groups = list(range(self._file.metadata.num_row_groups))
        try:
            for groups, batch_rows in _runs(all_groups, READ_KEYS_ROWS, self._key_bytes_per_row):
                for batch in self._file.iter_batches(
                    batch_size=batch_rows, row_groups=groups, columns=[source], use_threads=False
                ):
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
            for run, run_batch_rows in _runs(groups, batch_rows, self._text_bytes_per_row):
                for batch in self._file.iter_batches(
                    batch_size=run_batch_rows, row_groups=run, columns=sources, use_threads=False
                ):
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


class _TextSizes:
    """What a file's text columns decode to, judged before any row is read.

    A dictionary page holds a value once however many rows point at it, so a file of kilobytes
    can decode to gigabytes. Each text chunk's dictionary is read (its first row, read as a
    dictionary, brings the whole page): a column with a value over HUGE_VALUE_BYTES is kept as
    a dictionary. Beside its dictionary, a chunk decodes to about its uncompressed size: per row
    group, the text bytes a row takes (the key's alone too, for the duplicate-key pass) set how
    many rows a batch may hold, and a row group of far more text than legal values take is refused.
    """

    def __init__(self, file: pq.ParquetFile, path: Path, mapping: ColumnMapping) -> None:
        self.huge_columns: list[str] = []
        metadata, schema = file.metadata, file.schema_arrow
        key_source = mapping.source_for[KEY_COLUMN]
        text_sources = [source for source in mapping.source_for.values() if is_text_type(_value_type(schema.field(source).type))]
        self.bytes_per_row: list[float] = []
        self.key_bytes_per_row: list[float] = []
        # A column chunk is numbered among the file's leaves: an ignored nested column before
        # a text column shifts it from the column's place in the schema.
        leaf_of = {metadata.schema.column(leaf).path: leaf for leaf in range(metadata.num_columns)}
        peek: pq.ParquetFile | None = None
        try:
            for group in range(metadata.num_row_groups):
                row_group = metadata.row_group(group)
                rows = max(1, row_group.num_rows)
                chunks = {source: row_group.column(leaf_of[source]) for source in text_sources if source in leaf_of}
                text_chunks = {source: chunk for source, chunk in chunks.items() if chunk.physical_type == "BYTE_ARRAY"}
                # Judged on the metadata alone, before a dictionary page is decoded to look at it.
                _refuse_if_too_much_text(group, rows, sum(chunk.total_uncompressed_size for chunk in text_chunks.values()))
                text_bytes = key_bytes = 0
                for source, chunk in text_chunks.items():
                    dictionary_bytes = 0
                    if chunk.has_dictionary_page:
                        if peek is None:
                            peek = _open(path, read_dictionary=text_sources)
                        dictionary_bytes = self._look_at_dictionary(peek, group, source)
                    plain_bytes = max(0, chunk.total_uncompressed_size - dictionary_bytes)
                    text_bytes += plain_bytes
                    key_bytes += plain_bytes if source == key_source else 0
                self.bytes_per_row.append(text_bytes / rows)
                self.key_bytes_per_row.append(key_bytes / rows)
        except (pa.ArrowInvalid, OSError) as error:
            raise CorruptFile(f"Parquet file unreadable while reading its dictionaries: {error}") from error
        finally:
            if peek is not None:
                peek.close()

    def _look_at_dictionary(self, peek: pq.ParquetFile, group: int, source: str) -> int:
        """The bytes of the chunk's dictionary; the column is kept as a dictionary if a value in it is huge."""
        first = next(peek.iter_batches(batch_size=1, row_groups=[group], columns=[source], use_threads=False), None)
        values = None if first is None else first.column(0)
        if values is None or not pa.types.is_dictionary(values.type) or not len(values.dictionary):
            return 0
        lengths = pc.binary_length(values.dictionary)
        if source not in self.huge_columns and pc.max(lengths).as_py() > HUGE_VALUE_BYTES:
            self.huge_columns.append(source)
        # PLAIN-encoded, as the page holds it: each value with a 4-byte length.
        return int(pc.sum(lengths).as_py()) + 4 * len(values.dictionary)


def _refuse_if_too_much_text(group: int, rows: int, text_bytes: int) -> None:
    if text_bytes > TEXT_BYTES_PER_ROW_GROUP and text_bytes / rows > LEGAL_TEXT_BYTES_PER_ROW:
        raise CorruptFile(
            f"row group {group} holds {text_bytes} bytes of text for {rows} rows, more than {TEXT_BYTES_PER_ROW_GROUP} "
            f"and more than legal values take ({LEGAL_TEXT_BYTES_PER_ROW} bytes a row): refused before reading, its "
            "pages would not fit in memory; values this long would every one be rejected"
        )


def _runs(groups: list[int], batch_rows: int, bytes_per_row: list[float]) -> Iterator[tuple[list[int], int]]:
    """Consecutive row groups, each run with the batch size whose decoded text stays within TEXT_BYTES_PER_BATCH."""
    run: list[int] = []
    run_batch_rows = batch_rows
    for group in groups:
        fitting = (
            batch_rows
            if bytes_per_row[group] * batch_rows <= TEXT_BYTES_PER_BATCH
            else int(TEXT_BYTES_PER_BATCH // bytes_per_row[group])
        )
        size = max(1, min(batch_rows, fitting))
        if run and size != run_batch_rows:
            yield run, run_batch_rows
            run = []
        run.append(group)
        run_batch_rows = size
    if run:
        yield run, run_batch_rows


def _open(path: Path, read_dictionary: list[str] | None = None) -> pq.ParquetFile:
    # Buffered reads, not a memory map: mapped pages count as resident memory
    # and would grow with the file.
    return pq.ParquetFile(
        path,
        memory_map=False,
        buffer_size=READ_BUFFER_BYTES,
        pre_buffer=False,
        read_dictionary=read_dictionary,
        # Spark and older Snowflake unloads write INT96. In milliseconds every INT96 day fits in
        # int64 (in microseconds one past year 294,247 wraps into range); validation cuts to seconds.
        coerce_int96_timestamp_unit="ms",
        # A page whose CRC does not match (parquet-mr and pyarrow can write them) is a corrupt file,
        # not altered values; a file without checksums is read as before.
        page_checksum_verification=True,
    )


def _value_type(data_type: pa.DataType) -> pa.DataType:
    return data_type.value_type if pa.types.is_dictionary(data_type) else data_type
