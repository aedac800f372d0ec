"""A row's fingerprint: MD5 of one canonical text of its values, the same whether MariaDB or pyarrow writes it.

The signals table keeps each row's fingerprint in a generated column stored in its index
(`row_fingerprint`, migrations/0013), so the server recomputes it on every write,
the ingest's and a person's alike. A day-two sync computes the same from the
file's validated rows and stages only the rows whose fingerprint the table lacks
(functions/ingest/change_detection.py).

The text is injective, so equal texts mean equal rows: fields are joined by 0x1F,
a string is its byte length, ':' and its bytes (a 0x1F inside it is skipped by its
length), a number or a boolean is its digits, a timestamp its seconds since the epoch
(UNIX_TIMESTAMP, which reads a TIMESTAMP column without the session's time zone),
and NULL is the empty field, which no value renders as. 128 bits: two different rows
share a fingerprint with odds of about 2^-128 per pair compared.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest.columns import SIGNAL_COLUMNS, Column, Kind

FINGERPRINT_COLUMN = "row_fingerprint"
FINGERPRINT_BYTES = 16
FIELD_SEPARATOR = "\x1f"


def _sql_field(column: Column) -> str:
    name = column.name
    if column.kind is Kind.STRING:
        return f"IFNULL(CONCAT(OCTET_LENGTH({name}), ':', {name}), '')"
    if column.kind is Kind.TIMESTAMP:
        return f"IFNULL(UNIX_TIMESTAMP({name}), '')"
    return f"IFNULL({name}, '')"


def fingerprint_sql() -> str:
    """The generated column's expression (migrations/0013 holds it verbatim; a test checks they agree)."""
    fields = ",\n    ".join(_sql_field(column) for column in SIGNAL_COLUMNS)
    return f"UNHEX(MD5(CONCAT_WS(0x1f,\n    {fields})))"


def _text_field(column: Column, values: pa.ChunkedArray | pa.Array) -> pa.Array:
    if column.kind is Kind.STRING:
        text = pc.binary_join_element_wise(pc.cast(pc.binary_length(values), pa.string()), values, ":")
    elif column.kind is Kind.TIMESTAMP:
        text = pc.cast(pc.cast(values, pa.int64()), pa.string())
    elif column.kind is Kind.BOOL:
        text = pc.if_else(values, "1", "0")
    else:
        text = pc.cast(values, pa.string())
    return pc.fill_null(text, "")


def canonical_texts(rows: pa.Table) -> pa.Array:
    """Each row's canonical text (validated rows: the types validation normalises to)."""
    fields = [_text_field(column, rows.column(column.name)) for column in SIGNAL_COLUMNS]
    joined = pc.binary_join_element_wise(*fields, FIELD_SEPARATOR)
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined


def fingerprints_of_texts(texts: pa.Array) -> list[bytes]:
    """Each canonical text's 16-byte fingerprint, in order."""
    md5 = hashlib.md5
    return [md5(text, usedforsecurity=False).digest() for text in pc.cast(texts, pa.binary()).to_pylist()]


def fingerprints(rows: pa.Table) -> list[bytes]:
    """Each row's 16-byte fingerprint, in row order."""
    return fingerprints_of_texts(canonical_texts(rows))
