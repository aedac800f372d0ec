"""Which rows of a file differ from the table, found before anything is staged.

A day two stages, lists and publishes only the rows that differ. One read of the file
validates each chunk and computes each valid row's fingerprint (row_fingerprints.py),
spilled to the work directory by the fingerprint's first byte; then, a partition at a
time, the table's fingerprints of the same range (read from their index, 16 bytes a
row) are compared with the file's:

- a file row whose fingerprint the table lacks is new or changed: it is staged;
- a table fingerprint no file row has is a changed row's old state, a rejected row's
  company, or a company absent from the file: kept for a delete (`unmatched`).

Memory holds one partition (`partition_rows` table rows) and one mark per file row,
whatever the file's size. Equal fingerprints mean equal rows (128 bits, an injective
text); a row the compare calls changed is compared again, column by column, when the
publish lists it, so a file row is never written that did not differ.
"""

from __future__ import annotations

import logging
import math
from array import array
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest.chunks import OpenedFile
from functions.ingest.repository import TableFingerprints
from functions.ingest.row_fingerprints import FINGERPRINT_BYTES, canonical_texts, fingerprints_of_texts
from functions.ingest.validation import SOURCE_ROW, validate_batch

logger = logging.getLogger("upsell_signals.ingest")

UNCHANGED, TO_STAGE, REJECTED = 0, 1, 2
# Table fingerprints held at once: 32 MB, and the file's of the same range beside them.
PARTITION_ROWS = 2_000_000


@dataclass
class FileComparison:
    """The file compared with the table: a mark per file row, and the table's fingerprints no file row has."""

    marks: bytearray  # per file row from `from_row` on: UNCHANGED, TO_STAGE or REJECTED
    rows_to_stage: int
    unmatched_path: Path  # 16 bytes each, back to back
    rows_unmatched: int
    from_row: int = 0  # rows before it were not compared: what is unmatched is known only from 0
    with_unmatched: bool = True

    def rows_needed(self, first_row: int, end_row: int) -> list[int]:
        """Offsets (from first_row) of the rows a chunk must read again: to stage, or to record as rejected."""
        chunk = self.marks[first_row:end_row]
        return [offset for offset, mark in enumerate(chunk) if mark] if chunk.strip(b"\0") else []

    def rows_to_stage_before(self, end_row: int) -> list[int]:
        """The rows to stage among the first `end_row`."""
        marks = self.marks
        return [row for row in range(end_row) if marks[row] == TO_STAGE]

    def unmatched_pages(self, page_rows: int = 100_000) -> Iterator[list[bytes]]:
        """The table's unmatched fingerprints, a page at a time (of a compare of the whole file)."""
        if self.from_row or not self.with_unmatched:
            raise AssertionError("only a compare of the whole file that kept the unmatched rows tells which companies it lacks")
        with self.unmatched_path.open("rb") as source:
            while page := source.read(page_rows * FINGERPRINT_BYTES):
                yield [page[start : start + FINGERPRINT_BYTES] for start in range(0, len(page), FINGERPRINT_BYTES)]

    def remove(self) -> None:
        self.unmatched_path.unlink(missing_ok=True)


def compare_file(
    opened: OpenedFile,
    table: TableFingerprints,
    work_path: Path,
    *,
    chunk_rows: int,
    from_row: int = 0,
    with_unmatched: bool = True,
    partition_rows: int = PARTITION_ROWS,
) -> FileComparison:
    """Read the file once from `from_row` on and compare it with the table.

    The table must not change meanwhile: hold the publish lock. `with_unmatched`: also keep
    the table's fingerprints no file row has (what a delete needs).
    """
    marks = bytearray(opened.num_rows)
    unmatched_path = work_path.with_suffix(".unmatched")
    unmatched_path.write_bytes(b"")
    if from_row >= opened.num_rows:  # a resumed pass staged every row already
        return FileComparison(marks, 0, unmatched_path, 0, from_row)
    partitions = max(1, math.ceil(table.estimated_rows() / partition_rows))
    spills = [_Spill(work_path.with_suffix(f".file{index}")) for index in range(partitions)]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="table-fingerprints") as reader:
        # The first partition's table side is read while the file is: the server's core at work.
        first_partition = reader.submit(_table_partition, table, 0, partitions)
        try:
            with ExitStack() as stack:
                for spill in spills:
                    stack.enter_context(spill.writing())
                for source_rows, digests in _file_fingerprints(opened, from_row, chunk_rows, marks):
                    _spill_by_partition(spills, partitions, source_rows, digests)
            rows_to_stage = rows_unmatched = 0
            with unmatched_path.open("wb") as unmatched:
                for index, spill in enumerate(spills):
                    pages = first_partition.result() if index == 0 else _table_partition(table, index, partitions)
                    file_fingerprints, file_rows = spill.read()
                    # Page by page, so that only one page's lookup table is held at a time.
                    found = pa.nulls(len(file_fingerprints), pa.bool_()).fill_null(False)
                    for page in pages:
                        found = pc.or_(found, pc.is_in(file_fingerprints, value_set=page))
                        if with_unmatched:
                            gone = pc.filter(page, pc.invert(pc.is_in(page, value_set=file_fingerprints)))
                            unmatched.write(_fixed_size_bytes(gone))
                            rows_unmatched += len(gone)
                    for row in pc.filter(file_rows, pc.invert(found)).to_pylist():
                        marks[row] = TO_STAGE
                        rows_to_stage += 1
        finally:
            first_partition.cancel()
            for spill in spills:
                spill.path.unlink(missing_ok=True)
                spill.rows_path.unlink(missing_ok=True)
    logger.info(
        "compared the file with the table from row %d: %d of %d rows differ",
        from_row,
        rows_to_stage,
        opened.num_rows - from_row,
        extra={"rows_to_stage": rows_to_stage, "table_rows_unmatched": rows_unmatched, "partitions": partitions},
    )
    return FileComparison(marks, rows_to_stage, unmatched_path, rows_unmatched, from_row, with_unmatched)


def _file_fingerprints(
    opened: OpenedFile, from_row: int, chunk_rows: int, marks: bytearray
) -> Iterator[tuple[list[int], list[bytes]]]:
    """Each chunk's valid rows' numbers and fingerprints; rejected rows marked. The next chunk is read on a worker thread."""
    batches = opened.signal_file.batches(from_row, chunk_rows)

    def prepare() -> tuple[list[int], pa.Array] | None:
        next_batch = next(batches, None)
        if next_batch is None:
            return None
        first_row, batch = next_batch
        validated = validate_batch(batch, first_row, opened.duplicates)
        for rejected in validated.rejected_rows:
            marks[rejected.source_row] = REJECTED
        rows = validated.valid_rows
        return rows.column(SOURCE_ROW).to_pylist(), canonical_texts(rows)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fingerprint-chunk") as worker:
        pending = worker.submit(prepare)
        while (prepared := pending.result()) is not None:
            pending = worker.submit(prepare)
            source_rows, texts = prepared
            yield source_rows, fingerprints_of_texts(texts)


def _table_partition(table: TableFingerprints, index: int, partitions: int) -> list[pa.Array]:
    """The table's fingerprints of partition `index`, a page (TableFingerprints.between) an array."""
    return [_fixed_size(page) for page in table.between(*_partition_range(index, partitions))]


def _partition_range(index: int, partitions: int) -> tuple[bytes, bytes | None]:
    """The fingerprints of partition `index`: first bytes from ceil(index*256/partitions) up to the next's."""
    low = -(-index * 256 // partitions)
    high = -(-(index + 1) * 256 // partitions)
    return bytes([low]) + bytes(FINGERPRINT_BYTES - 1), (bytes([high]) + bytes(FINGERPRINT_BYTES - 1) if high < 256 else None)


def _spill_by_partition(spills: list[_Spill], partitions: int, source_rows: list[int], digests: list[bytes]) -> None:
    if partitions == 1:
        spills[0].write(source_rows, digests)
        return
    by_partition: list[tuple[list[int], list[bytes]]] = [([], []) for _ in range(partitions)]
    for row, digest in zip(source_rows, digests, strict=True):
        rows, part = by_partition[digest[0] * partitions >> 8]
        rows.append(row)
        part.append(digest)
    for spill, (rows, part) in zip(spills, by_partition, strict=True):
        spill.write(rows, part)


def _fixed_size(blob: bytes) -> pa.Array:
    return pa.Array.from_buffers(pa.binary(FINGERPRINT_BYTES), len(blob) // FINGERPRINT_BYTES, [None, pa.py_buffer(blob)])


def _fixed_size_bytes(values: pa.Array) -> bytes:
    if len(values) == 0:
        return b""
    data = values.buffers()[1]
    assert data is not None
    start = values.offset * FINGERPRINT_BYTES
    return bytes(data.to_pybytes()[start : start + len(values) * FINGERPRINT_BYTES])


class _Spill:
    """One partition's file fingerprints and row numbers, on local disk while the file is read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows_path = path.with_suffix(path.suffix + "rows")
        self._fingerprints: BinaryIO | None = None
        self._rows: BinaryIO | None = None

    def writing(self) -> ExitStack:
        stack = ExitStack()
        self._fingerprints = stack.enter_context(self.path.open("wb"))
        self._rows = stack.enter_context(self.rows_path.open("wb"))
        return stack

    def write(self, source_rows: list[int], digests: list[bytes]) -> None:
        assert self._fingerprints is not None and self._rows is not None
        self._fingerprints.write(b"".join(digests))
        self._rows.write(array("I", source_rows).tobytes())  # "I" is 4 bytes on every platform Lambda runs

    def read(self) -> tuple[pa.Array, pa.Array]:
        rows = self.rows_path.read_bytes()
        return _fixed_size(self.path.read_bytes()), pa.Array.from_buffers(pa.uint32(), len(rows) // 4, [None, pa.py_buffer(rows)])
