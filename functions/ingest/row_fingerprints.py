"""A row's fingerprint: MD5 of one canonical text of its values, the same whether MariaDB or pyarrow computes it.

A day-two sync computes it from the file's validated rows while the server computes
it from the table's rows as they are (`fingerprint_sql`), and stages only the rows
whose fingerprint the table lacks (functions/ingest/change_detection.py). Nothing is
stored: a write to the table, the ingest's or a person's, cannot leave one stale.

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
    """The server's expression for a row's fingerprint (a test checks it agrees with `fingerprints`)."""
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
