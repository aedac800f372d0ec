"""The files LOAD DATA reads (staging chunks and first loads): no value can break a field or a line."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from functions.ingest.load_files import write_load_file


def test_load_file_escapes_separators_and_marks_nulls(tmp_path: Path) -> None:
    # Given rows holding tabs, newlines, backslashes and nulls
    rows = pa.table({"text": pa.array(["tab\there", "line\nbreak\\", None]), "flag": pa.array([True, False, None])})
    # When written as a load file
    write_load_file(rows, tmp_path / "rows.tsv")
    # Then each is escaped, booleans are 1/0 and nulls are \N
    assert (tmp_path / "rows.tsv").read_bytes() == b"tab\\there\t1\nline\\nbreak\\\\\t0\n\\N\t\\N\n"
