"""The chunk pipeline: the object downloaded once per claimed sync, opened, its chunks prepared one ahead of the loader."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

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

    def remove(self) -> None:
        """Delete the copy, if this sync downloaded one (another run's file of the same object stays)."""
        if self._downloaded:
            self._path.unlink(missing_ok=True)


def open_file(download: ObjectDownload) -> OpenedFile:
    """Download the object (once per claimed sync) and find its duplicated keys."""
    local_path = download.local_path()
    signal_file = SignalFile(local_path)
    if signal_file.mapping.ignored:
        logger.info("ignoring extra columns: %s", ", ".join(signal_file.mapping.ignored))
    duplicates = signal_file.duplicate_keys()
    if duplicates.num_rows:
        logger.warning("%d company ids appear more than once; every copy is rejected", duplicates.num_rows)
    return OpenedFile(local_path, signal_file, duplicates)


@contextmanager
def prepared_chunks(opened: OpenedFile, from_row: int, *, chunk_rows: int, render: bool) -> Iterator[Iterator[PreparedChunk]]:
    """The file's chunks from `from_row` on, validated and (when `render`, for LOAD DATA) rendered, each prepared ahead.

    The next chunk is read, validated and rendered on a worker thread while the
    caller loads the current one: pyarrow and the file write release the GIL, and
    the load runs in the server, so the two overlap on two cores.
    """
    batches = opened.signal_file.batches(from_row, chunk_rows)
    load_files = [opened.path.with_suffix(f".load{slot}.tsv") for slot in (0, 1)]

    def prepare_next(slot: int) -> PreparedChunk | None:
        next_batch = next(batches, None)
        if next_batch is None:
            return None
        first_row, batch = next_batch
        validated = validate_batch(batch, first_row, opened.duplicates)
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
