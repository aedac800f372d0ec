"""A compare's fingerprints on local disk, so that memory holds one partition at a time.

Each side is cut into partitions by the fingerprint's first byte; a partition is a file of
fingerprints and a file of their numbers (file rows, or table ids) beside it.
"""

from __future__ import annotations

import sys
from array import array
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest.row_fingerprints import FINGERPRINT_BYTES

# Array codes of a file row's number and a table row's id (the same width on every platform Lambda runs).
ROW_CODE, ID_CODE = "I", "Q"


def spill_by_partition(spills: list[Spill], numbers: pa.Array | None, fingerprints: pa.Array) -> None:
    """Each fingerprint (and its number, if any) into the spill of its partition: by its first byte."""
    partitions = len(spills)
    if partitions == 1:
        spills[0].write(numbers, fingerprints)
        return
    partition_of = pc.shift_right(pc.multiply(pc.cast(_first_bytes(fingerprints), pa.uint16()), partitions), 8)
    for index, spill in enumerate(spills):
        in_partition = pc.equal(partition_of, index)
        spill.write(pc.filter(numbers, in_partition) if numbers is not None else None, pc.filter(fingerprints, in_partition))


def _first_bytes(fingerprints: pa.Array) -> pa.Array:
    """Each fingerprint's first byte (uint8)."""
    data = fingerprints.buffers()[1]
    assert data is not None
    every_byte = pa.Array.from_buffers(
        pa.uint8(), len(fingerprints) * FINGERPRINT_BYTES, [None, data], offset=fingerprints.offset * FINGERPRINT_BYTES
    )
    return pc.take(every_byte, pa.array(range(0, len(every_byte), FINGERPRINT_BYTES), pa.int64()))


def native_ids(big_endian: bytes) -> pa.Array:
    """Ids as the server sends them (8 bytes each, big-endian), as uint64."""
    numbers = array(ID_CODE, big_endian)
    if sys.byteorder == "little":
        numbers.byteswap()
    return pa.Array.from_buffers(pa.uint64(), len(numbers), [None, pa.py_buffer(numbers)])  # no copy: the array's own memory


def fixed_size(blob: bytes) -> pa.Array:
    """Fingerprints packed end to end, as an Arrow array (no copy)."""
    return pa.Array.from_buffers(pa.binary(FINGERPRINT_BYTES), len(blob) // FINGERPRINT_BYTES, [None, pa.py_buffer(blob)])


def fixed_size_bytes(values: pa.Array, width: int = FINGERPRINT_BYTES) -> bytes:
    """The bytes of an array of fixed-width values (fingerprints, or unsigned numbers `width` bytes wide)."""
    if len(values) == 0:
        return b""
    data = values.buffers()[1]
    assert data is not None
    return bytes(data.slice(values.offset * width, len(values) * width).to_pybytes())


def spill_bytes(file_rows: int, table_rows: int, *, with_unmatched: bool) -> int:
    """The most a compare writes to the work directory: a fingerprint and row number a file row, a fingerprint a table row
    (with its id, and the ids of the unmatched, when a delete needs them)."""
    per_table_row = FINGERPRINT_BYTES + (2 * array(ID_CODE).itemsize if with_unmatched else 0)
    return file_rows * (FINGERPRINT_BYTES + array(ROW_CODE).itemsize) + table_rows * per_table_row


class Spill:
    """One partition's fingerprints and their numbers (file rows, or table ids), on local disk while they are read."""

    ARROW_TYPES = {ROW_CODE: pa.uint32(), ID_CODE: pa.uint64()}

    def __init__(self, path: Path, number_code: str) -> None:
        self.path = path
        self.numbers_path = path.with_suffix(path.suffix + "numbers")
        self.number_code = number_code
        self._fingerprints: BinaryIO | None = None
        self._numbers: BinaryIO | None = None

    def writing(self) -> ExitStack:
        stack = ExitStack()
        self._fingerprints = stack.enter_context(self.path.open("wb"))
        self._numbers = stack.enter_context(self.numbers_path.open("wb"))
        return stack

    def write(self, numbers: pa.Array | None, fingerprints: pa.Array) -> None:
        assert self._fingerprints is not None and self._numbers is not None
        self._fingerprints.write(fixed_size_bytes(fingerprints))
        if numbers is not None:
            self._numbers.write(fixed_size_bytes(numbers, array(self.number_code).itemsize))

    def read(self) -> tuple[pa.Array, pa.Array]:
        numbers = self.numbers_path.read_bytes()
        number_type = self.ARROW_TYPES[self.number_code]
        count = len(numbers) // array(self.number_code).itemsize
        return fixed_size(self.path.read_bytes()), pa.Array.from_buffers(number_type, count, [None, pa.py_buffer(numbers)])

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.numbers_path.unlink(missing_ok=True)
