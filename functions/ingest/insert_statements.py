"""Render normalised rows as multi-row INSERT statements, column by column with pyarrow.

The INSERT path (STAGING_LOAD_METHOD=insert, where the server refuses LOCAL INFILE) used
to hand every value to PyMySQL's executemany, which escapes and formats value by value in
Python. Here each column is turned into SQL literals once, by pyarrow compute, the
literals are joined into row tuples, and statements are cut from the rows' bytes as they
lie in memory: no Python object per value or per row.

Why this is not string-built SQL from input: only values are rendered here, from Arrow
columns of the types validation normalises to (strings, integers, booleans, DECIMAL, second
timestamps, dates), each by a rule of its type; a type without a rule is refused. Strings
are escaped exactly as PyMySQL's `escape_string` does (the table below is its table), or
with quotes doubled when the session has NO_BACKSLASH_ESCAPES, as PyMySQL does then.
Table and column names come from our own constants, never from the file.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

NULL = "NULL"
# pymysql.converters._escape_table: backslash first, or the escapes added after it would
# themselves be escaped again.
BACKSLASH_ESCAPES: tuple[tuple[str, str], ...] = (
    ("\\", "\\\\"),
    ("\0", "\\0"),
    ("\n", "\\n"),
    ("\r", "\\r"),
    ("\x1a", "\\Z"),
    ('"', '\\"'),
    ("'", "\\'"),
)
_NEEDS_BACKSLASH_ESCAPE = "[\\\\\x00\n\r\x1a\"']"
# With NO_BACKSLASH_ESCAPES a backslash is an ordinary character; only the quote is special.
QUOTE_ESCAPES: tuple[tuple[str, str], ...] = (("'", "''"),)
# Arrow's decimal-to-string uses an exponent only below 10^-6 (never for scale <= 6), and
# MariaDB would read "1E-7" as a DOUBLE: refuse scales where that could happen.
MAX_DECIMAL_SCALE = 6
# 1 MB statements stay under the smallest usual max_allowed_packet (1 MiB), so the server's
# setting need not be asked. Larger ones measured no better beyond the noise: 200k rows
# staged in 25k-row chunks, sizes interleaved over two rounds on a loaded 2-core machine,
# took 24.0 / 28.7 s at 256 KiB, 23.6 / 33.7 s at 1 MB, 23.3 / 18.8 s at 4 MiB and
# 21.1 / 18.2 s at 15 MiB (the server's work per row, not the round trips, dominates).
DEFAULT_STATEMENT_BYTES = 1_000_000
MIN_STATEMENT_BYTES = 16_384


def sql_literals(values: pa.Array | pa.ChunkedArray, *, no_backslash_escapes: bool = False) -> pa.Array | pa.ChunkedArray:
    """Each value of `values` as a MariaDB literal (utf8mb4 text), NULL for nulls; one pass per column.

    TypeError for a type without a rule (floats, zoned or sub-second timestamps, ...):
    validation decides types, this module only renders them.
    """
    data_type = values.type
    if pa.types.is_large_string(data_type):
        # One string type for every literal, so that rows can be joined (a chunk is far below 2 GiB).
        values, data_type = pc.cast(values, pa.string()), pa.string()
    if pa.types.is_string(data_type):
        escapes, needs = (QUOTE_ESCAPES, "'") if no_backslash_escapes else (BACKSLASH_ESCAPES, _NEEDS_BACKSLASH_ESCAPE)
        # Most columns hold nothing to escape: only scan-and-copy those that do.
        if pc.any(pc.match_substring_regex(values, needs)).as_py():
            for raw, escaped in escapes:
                values = pc.replace_substring(values, raw, escaped)
        text = _quoted(values)
    elif pa.types.is_boolean(data_type):
        text = pc.if_else(values, "1", "0")
    elif pa.types.is_integer(data_type):
        text = pc.cast(values, pa.string())
    elif pa.types.is_decimal(data_type):
        if not 0 <= data_type.scale <= MAX_DECIMAL_SCALE:
            raise TypeError(f"no SQL literal rule for {data_type} (scale above {MAX_DECIMAL_SCALE})")
        text = pc.cast(values, pa.string())
    elif pa.types.is_timestamp(data_type):
        # A TIMESTAMP(0) column would round a fraction and a zone would shift the value:
        # only naive whole seconds (validation's UTC) are rendered, as 'YYYY-MM-DD HH:MM:SS'.
        if data_type.unit != "s" or data_type.tz is not None:
            raise TypeError(f"no SQL literal rule for {data_type}: expected timestamp[s] without a zone")
        text = _quoted(pc.cast(values, pa.string()))
    elif pa.types.is_date32(data_type):
        text = _quoted(pc.cast(values, pa.string()))
    else:
        raise TypeError(f"no SQL literal rule for {data_type}")
    return pc.fill_null(text, NULL)


def _quoted(text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    return pc.binary_join_element_wise("'", text, "'", "")  # a null stays null


def insert_statements(
    table: str,
    columns: Sequence[str],
    rows: pa.Table,
    *,
    fixed: Mapping[str, pa.Scalar] | None = None,
    max_statement_bytes: int | None = None,
    no_backslash_escapes: bool = False,
) -> Iterator[bytes]:
    """`INSERT INTO table (fixed..., columns...) VALUES (...),(...)` statements holding every row of `rows`, in order.

    `fixed` are columns with one value for every row (the staging date), rendered once.
    Each statement is at most `max_statement_bytes` (default DEFAULT_STATEMENT_BYTES) long, unless one row alone is longer
    (then that row is a statement of its own). `table` and `columns` must be our own
    identifiers; they are not quoted or checked here.
    """
    max_statement_bytes = max_statement_bytes or DEFAULT_STATEMENT_BYTES
    if max_statement_bytes < MIN_STATEMENT_BYTES:
        raise ValueError(f"max_statement_bytes below {MIN_STATEMENT_BYTES}")
    if rows.num_rows == 0:
        return
    fixed = fixed or {}
    fixed_literals = [sql_literals(pa.array([value.as_py()], value.type))[0].as_py() for value in fixed.values()]
    literals = [
        *fixed_literals,
        *(sql_literals(rows.column(name), no_backslash_escapes=no_backslash_escapes) for name in columns),
    ]
    # Every row as "(v1,v2,...)," so that the rows of a statement are one slice of the buffer.
    tuples = pc.binary_join_element_wise("(", pc.binary_join_element_wise(*literals, ","), "),", "")
    head = f"INSERT INTO {table} ({', '.join((*fixed, *columns))}) VALUES ".encode()
    budget = max_statement_bytes - len(head) + 1  # the last row's comma is dropped
    for chunk in tuples.chunks if isinstance(tuples, pa.ChunkedArray) else [tuples]:
        yield from _cut(head, chunk, budget)


def _cut(head: bytes, tuples: pa.Array, budget: int) -> Iterator[bytes]:
    """Statements of consecutive rows, each as many rows as fit in `budget` bytes."""
    if len(tuples) == 0:
        return
    _, offsets_buffer, data_buffer = tuples.buffers()
    offsets = memoryview(offsets_buffer).cast("q" if pa.types.is_large_string(tuples.type) else "i")[
        tuples.offset : tuples.offset + len(tuples) + 1
    ]
    data = memoryview(data_buffer)
    first, rows = 0, len(tuples)
    while first < rows:
        # The most rows from `first` on whose bytes fit the budget; at least one.
        last = bisect.bisect_right(offsets, offsets[first] + budget, first + 1, rows + 1) - 1
        last = max(last, first + 1)
        yield head + data[offsets[first] : offsets[last] - 1]
        first = last
