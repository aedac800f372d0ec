"""Render normalised rows as a file for MariaDB's LOAD DATA (a staging chunk or a first-load chunk), vectorised with pyarrow.

Format: LOAD DATA's defaults (tab-separated, backslash escapes, \\N for NULL, one row per
line), so no value can break a field or a line whatever characters it holds.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest.work_space import no_space_is_permanent

NULL_MARK = "\\N"
# Order matters: the backslash first, or the escapes added after it would be doubled.
_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"), ("\0", "\\0"))
_NEEDS_ESCAPE = "[\\\\\t\n\r\x00]"


def _as_text(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    data_type = values.type
    if pa.types.is_string(data_type):
        # Most columns hold no separator at all: only scan-and-copy those that do.
        if pc.any(pc.match_substring_regex(values, _NEEDS_ESCAPE)).as_py():
            for raw, escaped in _ESCAPES:
                values = pc.replace_substring(values, raw, escaped)
        text = values
    elif pa.types.is_boolean(data_type):
        text = pc.if_else(values, "1", "0")
    else:
        # Timestamps of unit "s" cast to "YYYY-MM-DD HH:MM:SS", which MariaDB reads as is
        # (far faster than strftime); numbers and decimals to their plain digits.
        text = pc.cast(values, pa.string())
    return pc.fill_null(text, NULL_MARK)


def write_load_file(rows: pa.Table, path: Path) -> int:
    """Write `rows` (columns in load order) to `path`; returns the bytes written.

    A full disk is NoSpace (permanent), not a raw OSError that Lambda would retry.
    """
    with no_space_is_permanent(path.parent, f"the load file {path.name}"):
        if rows.num_rows == 0:
            path.write_bytes(b"")
            return 0
        columns = [_as_text(rows.column(name)) for name in rows.column_names]
        lines = pc.binary_join_element_wise(*columns, "\t")
        with path.open("wb") as sink:
            for chunk in lines.chunks if isinstance(lines, pa.ChunkedArray) else [lines]:
                # Each line gets its newline, then the string data buffer already holds the
                # lines back to back: write that memory as it is, no per-row Python objects.
                with_newlines = pc.binary_join_element_wise(chunk, pa.scalar("\n"), "")
                sink.write(_concatenated_bytes(with_newlines))
    return path.stat().st_size


def _concatenated_bytes(strings: pa.Array) -> memoryview:
    """The bytes of every value of a null-free string array, back to back, without copying."""
    _, offsets_buffer, data_buffer = strings.buffers()
    offsets = pa.Array.from_buffers(pa.int32(), len(strings) + 1, [None, offsets_buffer], offset=strings.offset)
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    return memoryview(data_buffer)[start:end]
