"""One mark per file row, what a compare found of it, in two bits: a 10M-row file's marks take 2.5 MB.

A byte a row would be 10 MB at 10M rows, held from the compare to the end of staging,
and the one part of a day two's memory that grows with the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

UNCHANGED, TO_STAGE, REJECTED = 0, 1, 2
_ROWS_PER_BYTE = 4
# Each packed byte's four marks, one byte each: unpacking a chunk is one lookup a byte.
_UNPACKED = [bytes((packed >> shift) & 3 for shift in (0, 2, 4, 6)) for packed in range(256)]
_UNPACK_ROWS = 1 << 20  # rows unpacked at once when going through every row


class RowMarks:
    """UNCHANGED, TO_STAGE or REJECTED for each of a file's rows; every row starts UNCHANGED and is marked once at most.

    Four rows share a byte, so one thread marks at a time (the compare marks rejected rows
    while it reads the file, and the rows to stage after).
    """

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self._packed = bytearray(-(-rows // _ROWS_PER_BYTE))

    def mark_rows(self, rows: Iterable[int], mark: int) -> int:
        """Mark each of these rows; returns how many."""
        packed = self._packed
        count = 0
        for row in rows:
            packed[row >> 2] |= mark << ((row & 3) << 1)
            count += 1
        return count

    def between(self, first_row: int, end_row: int) -> bytes:
        """The marks of rows first_row up to end_row, a byte each."""
        end_row = min(end_row, self.rows)
        if end_row <= first_row:
            return b""
        start = first_row >> 2
        packed = self._packed[start : -(-end_row // _ROWS_PER_BYTE)]
        if not packed.strip(b"\0"):  # most chunks of a day two: nothing to unpack
            return bytes(end_row - first_row)
        skip = first_row - start * _ROWS_PER_BYTE
        return b"".join(map(_UNPACKED.__getitem__, packed))[skip : skip + end_row - first_row]

    def offsets_marked(self, first_row: int, end_row: int) -> list[int]:
        """Offsets (from first_row) of the rows up to end_row with any mark."""
        marks = self.between(first_row, end_row)
        return [offset for offset, mark in enumerate(marks) if mark] if marks.strip(b"\0") else []

    def rows_marked(self, mark: int, end_row: int | None = None) -> Iterator[int]:
        """The rows with this mark, in order, among the first `end_row` (every row when None)."""
        end_row = self.rows if end_row is None else min(end_row, self.rows)
        for first_row in range(0, end_row, _UNPACK_ROWS):
            marks = self.between(first_row, min(first_row + _UNPACK_ROWS, end_row))
            yield from (first_row + offset for offset, found in enumerate(marks) if found == mark)
