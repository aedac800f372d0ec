"""The files every contender reads, generated (seeded) before anything is timed.

Per size: the day-one file, the two day-two shapes, and the floor's load file (the
day-one rows normalised by the ingest's own validation and rendered by its own
write_load_file, so the floor loads exactly the values the sync loads).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from functions.ingest.columns import COLUMN_NAMES
from functions.ingest.load_files import write_load_file
from functions.ingest.parquet_reader import SignalFile
from functions.ingest.validation import validate_batch
from tests.factories import day_two, snowflake_table, write_pyarrow

DAY_ONE_SEED = 2026
DAY_TWO_SEED = 8
RENDER_CHUNK_ROWS = 50_000


@dataclass(frozen=True)
class SizeFiles:
    """The generated inputs of one size."""

    rows: int
    day_one: Path
    day_two_a: Path
    day_two_b: Path
    floor_load_file: Path

    def rows_of(self, path: Path) -> int:
        return int(pq.ParquetFile(path).metadata.num_rows)


def render_floor_file(parquet: Path, destination: Path) -> int:
    """The file's rows as LOAD DATA text, chunk by chunk; returns the rows written."""
    chunk = destination.with_suffix(".chunk")
    written = 0
    with destination.open("wb") as sink:
        for first_row, batch in SignalFile(parquet).batches(0, RENDER_CHUNK_ROWS):
            validated = validate_batch(batch, first_row)
            if validated.rejected_rows:
                raise RuntimeError(f"generated data has {len(validated.rejected_rows)} rejected rows at {first_row}")
            write_load_file(validated.valid_rows.select(list(COLUMN_NAMES)), chunk)
            sink.write(chunk.read_bytes())
            written += validated.valid_rows.num_rows
    chunk.unlink(missing_ok=True)
    return written


def generate(rows: int, directory: Path) -> SizeFiles:
    directory.mkdir(parents=True, exist_ok=True)
    table = snowflake_table(rows, seed=DAY_ONE_SEED)
    files = SizeFiles(
        rows=rows,
        day_one=write_pyarrow(table, directory / "day-one.parquet"),
        day_two_a=write_pyarrow(day_two(table, seed=DAY_TWO_SEED), directory / "day-two-a.parquet"),
        day_two_b=write_pyarrow(day_two(table, seed=DAY_TWO_SEED, model_run_everywhere=True), directory / "day-two-b.parquet"),
        floor_load_file=directory / "day-one.load.tsv",
    )
    del table
    render_floor_file(files.day_one, files.floor_load_file)
    return files
