"""The chunk pipeline: the object downloaded once per claimed sync, opened, its chunks prepared one ahead of the loader."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest.load_files import write_load_file
from functions.ingest.parquet_reader import SignalFile
from functions.ingest.s3_source import ObjectInfo, SignalObjectStore
from functions.ingest.validation import ValidatedBatch, validate_batch
from functions.ingest.work_space import remove_leftovers

logger = logging.getLogger("upsell_signals.ingest")


@dataclass(frozen=True)
class PreparedChunk:
    """A chunk validated and, for LOAD DATA, rendered to its file; ready to commit."""

    first_row: int
    rows_read: int
    validated: ValidatedBatch
    load_file: Path | None
    slot: int  # which of the two load files; the other may be in use by the chunk loading

    @property
    def end_row(self) -> int:
        """One past the chunk's last row: where the next chunk starts."""
        return self.first_row + self.rows_read


@dataclass(frozen=True)
class OpenedFile:
    """The downloaded object, open for reading, with the keys it holds more than once."""

    path: Path
    signal_file: SignalFile
    duplicates: pa.Table

    @property
    def num_rows(self) -> int:
        return self.signal_file.num_rows


class ObjectDownload:
    """The claimed object's local copy, owned by the service: downloaded at most once per claimed sync, removed at its end."""

    def __init__(self, store: SignalObjectStore, info: ObjectInfo, path: Path, *, leftovers_after: float) -> None:
        self._store = store
        self._info = info
        self._path = path
        self._leftovers_after = leftovers_after
        self._downloaded = False
        self._readers: list[SignalFile] = []  # what open_file opened on the copy, closed with it

    def local_path(self) -> Path:
        """The downloaded object, downloading it first if this sync has not yet.

        Before downloading, files a killed sync left in the work directory (untouched for
        `leftovers_after` seconds) are removed.
        """
        if not self._downloaded:
            for leftover in remove_leftovers(self._path.parent, self._leftovers_after):
                logger.info("removed %s, left by a sync that was killed", leftover.name)
            self._store.download(self._info, self._path)
            # Noted only once the download is complete and verified: a retry after a broken
            # one must download again, not open what the broken one left.
            self._downloaded = True
        return self._path

    def reading(self, signal_file: SignalFile) -> SignalFile:
        """`signal_file`, open on the copy, to close when the copy is removed."""
        self._readers.append(signal_file)
        return signal_file

    def remove(self) -> None:
        """Close what reads the copy, and delete it if this sync downloaded one (another run's file of the same object stays)."""
        for reader in self._readers:
            reader.close()
        self._readers.clear()
        if self._downloaded:
            self._path.unlink(missing_ok=True)


def open_file(download: ObjectDownload) -> OpenedFile:
    """Download the object (once per claimed sync) and find its duplicated keys."""
    local_path = download.local_path()
    signal_file = download.reading(SignalFile(local_path))
    if signal_file.mapping.ignored:
        logger.info("ignoring extra columns: %s", ", ".join(signal_file.mapping.ignored))
    duplicates = signal_file.duplicate_keys()
    # The pass's hashes (up to 64 MB) are freed, but the allocator keeps their pages; handed
    # back to the OS once, they do not sit under the peak of the load or compare that follows.
    pa.default_memory_pool().release_unused()
    if duplicates.num_rows:
        logger.warning("%d company ids appear more than once; every copy is rejected", duplicates.num_rows)
    return OpenedFile(local_path, signal_file, duplicates)


# A chunk whose rows all equal the table's: nothing to stage, nothing rejected.
_NOTHING_TO_STAGE = ValidatedBatch(valid_rows=pa.table({}), rejected_rows=[], rows_read=0)
# Offsets in the chunk from first_row to end_row of the rows to read again (see change_detection).
RowsNeeded = Callable[[int, int], list[int]]


@contextmanager
def prepared_chunks(
    opened: OpenedFile,
    from_row: int,
    *,
    chunk_rows: int,
    render: bool,
    rows_needed: RowsNeeded | None = None,
    end_row: int | None = None,
) -> Iterator[Iterator[PreparedChunk]]:
    """The file's chunks from `from_row` on, validated and (when `render`, for LOAD DATA) rendered, each prepared ahead.

    With `rows_needed` (a compare before staging), a chunk holds only the rows it names,
    and a chunk that needs none is not even read. With `end_row`, the chunks stop there
    (the last one cut short at it): the rows a compare that stopped early read.

    The next chunk is read, validated and rendered on a worker thread while the
    caller loads the current one: pyarrow and the file write release the GIL, and
    the load runs in the server, so the two overlap on two cores.
    """
    load_files = [opened.path.with_suffix(f".load{slot}.tsv") for slot in (0, 1)]
    reader = _ChunkReader(opened, from_row, chunk_rows)
    last_row = opened.num_rows if end_row is None else min(end_row, opened.num_rows)

    def prepare_next(slot: int) -> PreparedChunk | None:
        first_row = reader.next_row
        if first_row >= last_row:
            return None
        chunk_end = min(first_row + chunk_rows, last_row)
        if rows_needed is not None and not rows_needed(first_row, chunk_end):
            reader.skip_to(chunk_end)
            return PreparedChunk(first_row, chunk_end - first_row, _NOTHING_TO_STAGE, None, slot)
        batch = reader.read(first_row)  # may end sooner, at the end of a row group
        if first_row + batch.num_rows > last_row:
            batch = batch.slice(0, last_row - first_row)
            reader.next_row = last_row
        needed = None if rows_needed is None else rows_needed(first_row, first_row + batch.num_rows)
        if needed is None:
            validated = validate_batch(batch, first_row, opened.duplicates)
        else:
            offsets = pa.array(needed, pa.int64())
            row_numbers = pc.add(offsets, first_row)
            validated = validate_batch(_takeable(batch).take(offsets), first_row, opened.duplicates, row_numbers=row_numbers)
        load_file = None
        if render:
            load_file = load_files[slot]
            write_load_file(validated.valid_rows, load_file)
        return PreparedChunk(first_row, batch.num_rows, validated, load_file, slot)

    def chunks() -> Iterator[PreparedChunk]:
        pending = preparer.submit(prepare_next, 0)
        while (chunk := pending.result()) is not None:
            # The slot of the chunk before this one is free again: prepare into it.
            pending = preparer.submit(prepare_next, (chunk.slot + 1) % 2)
            yield chunk

    preparer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare-chunk")
    try:
        yield chunks()
    finally:
        preparer.shutdown(wait=True, cancel_futures=True)
        for load_file in load_files:
            load_file.unlink(missing_ok=True)


def _takeable(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with string views as large strings, the same values: `take` has no kernel for views."""
    columns = [pc.cast(column, pa.large_string()) if pa.types.is_string_view(column.type) else column for column in batch.columns]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


class _ChunkReader:
    """The file's batches in chunk order; a chunk skipped is not read, and reading resumes after it."""

    def __init__(self, opened: OpenedFile, from_row: int, chunk_rows: int) -> None:
        self._opened = opened
        self._chunk_rows = chunk_rows
        self.next_row = from_row
        self._batches: Iterator[tuple[int, pa.RecordBatch]] | None = None

    def skip_to(self, row: int) -> None:
        self.next_row = row
        self._batches = None

    def read(self, first_row: int) -> pa.RecordBatch:
        if self._batches is None:
            self._batches = self._opened.signal_file.batches(first_row, self._chunk_rows)
        batch_start, batch = next(self._batches)
        if batch_start != first_row:
            raise AssertionError(f"read the batch at row {batch_start}, expected {first_row}")
        self.next_row = first_row + batch.num_rows
        return batch
