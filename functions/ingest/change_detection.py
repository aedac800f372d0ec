"""Which rows of a file differ from the table, found before anything is staged.

A day two stages, lists and publishes only the rows that differ. One read of the file
validates each chunk and computes each valid row's fingerprint (row_fingerprints.py);
meanwhile the server computes the same fingerprint of every table row as it reads the
table in id order. Both sides are spilled to the work directory by the fingerprint's
first byte, then compared a partition at a time:

- a file row whose fingerprint the table lacks is new or changed: it is staged;
- a table row whose fingerprint no file row has is a changed row's old state, a rejected
  row's company, or a company absent from the file: kept for a delete (`unmatched`).

Memory holds one partition (`partition_rows` rows a side) whatever the file's size, and a
two-bit mark per file row (row_marks.py). Equal fingerprints mean equal rows (128 bits of
an injective text); different fingerprints always mean different rows, and a row the
compare calls changed is compared again, column by column, when the publish lists it.

The compare costs a read of the file and of the table; it pays when most rows are
unchanged. `changed_share_of_a_sample` tells beforehand (see stage.py).
"""

from __future__ import annotations

import logging
import math
from array import array
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest.chunks import OpenedFile
from functions.ingest.columns import KEY_COLUMN
from functions.ingest.fingerprint_spills import (
    ID_CODE,
    ROW_CODE,
    Spill,
    fixed_size,
    fixed_size_bytes,
    native_ids,
    spill_by_partition,
)
from functions.ingest.repository import TableFingerprints
from functions.ingest.row_fingerprints import canonical_texts, fingerprints_of_texts
from functions.ingest.row_marks import REJECTED, TO_STAGE, RowMarks
from functions.ingest.validation import SOURCE_ROW, validate_batch

logger = logging.getLogger("upsell_signals.ingest")

# Rows a side held at once, about: 8 MB of fingerprints each, and their numbers beside them.
PARTITION_ROWS = 500_000
MATCH_PAGE_ROWS = 250_000  # the table rows one lookup table is built of (about 12 MB)
# The file's rows read at once, at most: two batches are in flight (one read, validated and
# made into texts while the other's texts are hashed), about 1.2 KB a row at peak.
COMPARE_BATCH_ROWS = 10_000
# The sample that tells whether a compare pays: rows of the file's first chunk.
SAMPLE_ROWS = 1_000
# Asked after each batch of a compare with (end_row, rows rejected so far): True stops the read there.
StopReading = Callable[[int, int], bool]


@dataclass
class FileComparison:
    """The file compared with the table: a mark per file row, and the ids of the table rows no file row equals."""

    marks: RowMarks  # per file row from `from_row` on: UNCHANGED, TO_STAGE or REJECTED
    rows_to_stage: int
    unmatched_path: Path  # table row ids, 8 bytes each, back to back
    rows_unmatched: int
    from_row: int = 0  # rows before it were not compared: what is unmatched is known only from 0
    with_unmatched: bool = True
    # Where the read of the file stopped early (`stop_reading` said so): rows from it on were not compared.
    stopped_at_row: int | None = None

    def rows_needed(self, first_row: int, end_row: int) -> list[int]:
        """Offsets (from first_row) of the rows a chunk must read again: to stage, or to record as rejected."""
        return self.marks.offsets_marked(first_row, end_row)

    def rows_to_stage_before(self, end_row: int) -> list[int]:
        """The rows to stage among the first `end_row`."""
        return list(self.marks.rows_marked(TO_STAGE, end_row))

    def unmatched_pages(self, page_rows: int = 100_000) -> Iterator[list[int]]:
        """The ids of the table's rows no file row equals, a page at a time (of a compare of the whole file)."""
        if self.from_row or not self.with_unmatched or self.stopped_at_row is not None:
            raise AssertionError("only a compare of the whole file that kept the unmatched rows tells which companies it lacks")
        item = array(ID_CODE).itemsize
        with self.unmatched_path.open("rb") as source:
            while page := source.read(page_rows * item):
                yield array(ID_CODE, page).tolist()

    def remove(self) -> None:
        self.unmatched_path.unlink(missing_ok=True)


def changed_share_of_a_sample(opened: OpenedFile, table: TableFingerprints, chunk_rows: int) -> float | None:
    """The share of the file's first chunk's valid rows (up to SAMPLE_ROWS of them) the table lacks; None: no valid row."""
    first = next(opened.signal_file.batches(0, chunk_rows), None)
    if first is None:
        return None
    first_row, batch = first
    rows = validate_batch(batch, first_row, opened.duplicates).valid_rows
    if not rows.num_rows:
        return None
    sample = rows.take(pa.array(range(0, rows.num_rows, max(1, rows.num_rows // SAMPLE_ROWS))))
    held = table.of_companies(sample.column(KEY_COLUMN).to_pylist())
    sampled = fingerprints_of_texts(canonical_texts(sample))
    return sum(fingerprint not in held for fingerprint in sampled) / len(sampled)


def compare_file(
    opened: OpenedFile,
    table: TableFingerprints,
    work_path: Path,
    *,
    chunk_rows: int,
    from_row: int = 0,
    with_unmatched: bool = True,
    partition_rows: int = PARTITION_ROWS,
    stop_reading: StopReading | None = None,
) -> FileComparison:
    """Read the file once from `from_row` on and compare it with the table.

    The table must not change meanwhile: hold the publish lock. `chunk_rows`: the file's
    rows read at once, at most (and no more than COMPARE_BATCH_ROWS). `with_unmatched`:
    also keep the ids of the table's rows no file row equals (what a delete needs).
    `stop_reading(end_row, rows_rejected)`, asked after each batch with the rows rejected from
    `from_row` to `end_row`: True stops the read there (reject_ratio would trip whatever the
    rest holds); only the rows read are compared, and `stopped_at_row` says where it stopped.
    """
    marks = RowMarks(opened.num_rows)
    unmatched_path = work_path.with_suffix(".unmatched")
    unmatched_path.write_bytes(b"")
    if from_row >= opened.num_rows:  # a resumed pass staged every row already
        # Nothing read, so which table rows the file lacks is not known: not an empty list of them.
        return FileComparison(marks, 0, unmatched_path, 0, from_row, with_unmatched=False)
    # Partitions by a fingerprint's first byte: at most 256.
    partitions = min(256, max(1, math.ceil(max(table.estimated_rows(), opened.num_rows) / partition_rows)))
    file_spills = [Spill(work_path.with_suffix(f".file{index}"), ROW_CODE) for index in range(partitions)]
    table_spills = [Spill(work_path.with_suffix(f".table{index}"), ID_CODE) for index in range(partitions)]
    # Once it has read the table, its session waits on this process (the rest of the file, the
    # match): kept from the server's idle timeout, as it holds the publish lock.
    table_session = table.pinger()
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="table-fingerprints") as reader, ExitStack() as stack:
            for spill in (*file_spills, *table_spills):
                stack.enter_context(spill.writing())
            # The server computes the table's side while this process computes the file's.
            table_side = reader.submit(_spill_table, table, table_spills, with_unmatched, then=table_session.start)
            batch_rows = min(chunk_rows, COMPARE_BATCH_ROWS)
            read = _FileRead(end_row=from_row)
            for source_rows, digests in _file_fingerprints(opened, from_row, batch_rows, marks, read, stop_reading=stop_reading):
                spill_by_partition(file_spills, source_rows, digests)
            table_side.result()
        rows_to_stage = rows_unmatched = 0
        page_positions = pa.array(range(MATCH_PAGE_ROWS), pa.int32()) if with_unmatched else None
        with unmatched_path.open("wb") as unmatched:
            for file_spill, table_spill in zip(file_spills, table_spills, strict=True):
                file_fingerprints, file_rows = file_spill.read()
                table_fingerprints, table_ids = table_spill.read()
                # A page at a time, so that only one page's lookup table is held at once.
                found = pa.nulls(len(file_fingerprints), pa.bool_()).fill_null(False)
                for start in range(0, len(table_fingerprints), MATCH_PAGE_ROWS):
                    page = table_fingerprints.slice(start, MATCH_PAGE_ROWS)
                    # Each file row's equal in the page, if any. A table row's fingerprint is
                    # unique (its text holds the company id, a unique key), so the page rows
                    # no file row found are the unmatched ones: no lookup table of the file's
                    # side is built.
                    found_at = pc.index_in(file_fingerprints, value_set=page)
                    found = pc.or_(found, pc.is_valid(found_at))
                    if page_positions is not None:
                        gone = pc.filter(
                            table_ids.slice(start, MATCH_PAGE_ROWS),
                            pc.invert(pc.is_in(page_positions.slice(0, len(page)), value_set=pc.drop_null(found_at))),
                        )
                        unmatched.write(fixed_size_bytes(gone, array(ID_CODE).itemsize))
                        rows_unmatched += len(gone)
                rows_to_stage += marks.mark_rows(pc.filter(file_rows, pc.invert(found)).to_pylist(), TO_STAGE)
    finally:
        table_session.stop()
        for spill in (*file_spills, *table_spills):
            spill.remove()
    stopped_at_row = read.end_row if read.stopped else None
    logger.info(
        "compared the file with the table from row %d%s: %d of %d rows differ",
        from_row,
        "" if stopped_at_row is None else f" to row {stopped_at_row}, where it stopped early ({read.rows_rejected} rejected)",
        rows_to_stage,
        read.end_row - from_row,
        extra={"rows_to_stage": rows_to_stage, "table_rows_unmatched": rows_unmatched, "partitions": partitions},
    )
    return FileComparison(
        marks, rows_to_stage, unmatched_path, rows_unmatched, from_row, with_unmatched, stopped_at_row=stopped_at_row
    )


@dataclass
class _FileRead:
    """How far a compare's read of the file got, and the rows it rejected on the way."""

    end_row: int
    rows_rejected: int = 0
    stopped: bool = False


def _file_fingerprints(
    opened: OpenedFile,
    from_row: int,
    batch_rows: int,
    marks: RowMarks,
    read: _FileRead,
    *,
    stop_reading: StopReading | None = None,
) -> Iterator[tuple[pa.Array, pa.Array]]:
    """Each batch's valid rows' numbers (uint32) and fingerprints; rejected rows marked. The next batch is read meanwhile.

    `read` follows the read (on the one worker thread, batch after batch); `stop_reading` may end it early.
    """
    batches = opened.signal_file.batches(from_row, batch_rows)

    def prepare() -> tuple[pa.Array, pa.Array] | None:
        if stop_reading is not None and read.end_row > from_row and stop_reading(read.end_row, read.rows_rejected):
            read.stopped = read.end_row < opened.num_rows
            return None
        next_batch = next(batches, None)
        if next_batch is None:
            return None
        first_row, batch = next_batch
        validated = validate_batch(batch, first_row, opened.duplicates)
        marks.mark_rows((rejected.source_row for rejected in validated.rejected_rows), REJECTED)
        read.rows_rejected += len(validated.rejected_rows)
        read.end_row = first_row + batch.num_rows
        rows = validated.valid_rows
        return pc.cast(rows.column(SOURCE_ROW), pa.uint32()).combine_chunks(), canonical_texts(rows)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fingerprint-chunk") as worker:
        pending = worker.submit(prepare)
        while (prepared := pending.result()) is not None:
            pending = worker.submit(prepare)
            source_rows, texts = prepared
            yield source_rows, fixed_size(b"".join(fingerprints_of_texts(texts)))


def _spill_table(table: TableFingerprints, spills: list[Spill], with_ids: bool, *, then: Callable[[], None]) -> None:
    """Every table row's fingerprint (and, with_ids, its id), into the spill of its partition; then `then`."""
    for page, ids in table.pages(with_ids=with_ids):
        spill_by_partition(spills, native_ids(ids) if with_ids else None, fixed_size(page))
    then()
