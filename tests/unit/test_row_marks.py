"""RowMarks: two bits a row, read back a chunk at a time from any row."""

from __future__ import annotations

import random

import pytest

from functions.ingest.row_marks import REJECTED, TO_STAGE, UNCHANGED, RowMarks


@pytest.mark.parametrize("rows", [0, 1, 3, 4, 5, 1_001, 25_003])
def test_marks_read_back_as_set_from_any_row(rows: int) -> None:
    # Given a byte-per-row reference and the packed marks, marked alike at random
    chooser = random.Random(rows)
    reference = bytearray(rows)
    marks = RowMarks(rows)
    for row in range(rows):
        mark = chooser.choice([UNCHANGED, UNCHANGED, TO_STAGE, REJECTED])
        if mark:
            marks.mark_rows([row], mark)
            reference[row] = mark

    # Then every span reads back the reference's bytes, aligned on four rows or not
    spans = [(0, rows), (0, rows + 10), (rows, rows + 5)]
    spans += [(first, first + length) for first in range(min(rows, 9)) for length in (0, 1, 2, 3, 4, 7, 700)]
    spans += [(first, first + 25_000) for first in (1, 2, 3, 4_097) if first < rows]
    for first, end in spans:
        assert marks.between(first, end) == bytes(reference[first:end]), (first, end)
        assert marks.offsets_marked(first, end) == [row - first for row in range(first, min(end, rows)) if reference[row]]
    # And each mark's rows come back in order, all of them or those before a row
    for mark in (TO_STAGE, REJECTED):
        assert list(marks.rows_marked(mark)) == [row for row in range(rows) if reference[row] == mark]
        half = rows // 2
        assert list(marks.rows_marked(mark, half + 1)) == [row for row in range(min(rows, half + 1)) if reference[row] == mark]


def test_rows_marked_by_the_million_and_unmarked_spans_read_as_zeros() -> None:
    # Given 2.5M rows of which a few, far apart, are to stage (past the 1M rows unpacked at once)
    marks = RowMarks(2_500_001)
    rows = [0, 3, 1_048_575, 1_048_576, 2_097_153, 2_500_000]
    assert marks.mark_rows(rows, TO_STAGE) == len(rows)

    # Then they come back in order, and a span with no mark is all zeros
    assert list(marks.rows_marked(TO_STAGE)) == rows
    assert list(marks.rows_marked(REJECTED)) == []
    assert marks.between(5, 25_005) == bytes(25_000)
    assert marks.between(1_048_574, 1_048_578) == bytes([0, 1, 1, 0])
