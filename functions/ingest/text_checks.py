"""Text values: whether they are UTF-8, how long they are, and how a rejected one is kept.

Parquet readers hand BYTE_ARRAY (String) values over unvalidated, and a value may be huge:
these checks run vectorised on the bytes, and cut a value before it reaches Python.
Validation (validation.py) turns what they find into a rejected row's reasons.
"""

from __future__ import annotations

import codecs

import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest.columns import SIGNAL_COLUMNS

# A rejected row's original values are kept for operators, each cut at this many bytes: a
# whole 30 MB value would overflow the server's max_allowed_packet on the way in.
ORIGINAL_VALUE_MAX_BYTES = 1024
# A dictionary value longer than this many bytes is never decoded into its rows: every row
# would hold a copy (a 5 MB value in 25,000 rows is 125 GB), and no column holds one (the
# longest, 64 characters, takes at most 256 bytes), so its rows are rejected anyway.
HUGE_VALUE_BYTES = 4 * max(column.max_length or 0 for column in SIGNAL_COLUMNS)
# One well-formed UTF-8 sequence (no overlongs, no surrogates, nothing past U+10FFFF), as
# RE2 reads it on binary data, byte by byte. Slower than a cast's validation: only run where
# a cast found bad text, to tell which values.
_VALID_UTF8 = (
    r"^(?:[\x00-\x7F]|[\xC2-\xDF][\x80-\xBF]|\xE0[\xA0-\xBF][\x80-\xBF]|[\xE1-\xEC\xEE\xEF][\x80-\xBF]{2}"
    r"|\xED[\x80-\x9F][\x80-\xBF]|\xF0[\x90-\xBF][\x80-\xBF]{2}|[\xF1-\xF3][\x80-\xBF]{3}|\xF4[\x80-\x8F][\x80-\xBF]{2})*$"
)

# Binary: a BYTE_ARRAY without the String annotation, text if it is UTF-8 (checked per value).
TEXT_TYPES = (
    pa.types.is_string,
    pa.types.is_large_string,
    pa.types.is_string_view,
    pa.types.is_binary,
    pa.types.is_large_binary,
    pa.types.is_binary_view,
)


def is_text_type(data_type: pa.DataType) -> bool:
    """Whether values of `data_type` are text: strings, or bytes taken as text where they are UTF-8."""
    return any(predicate(data_type) for predicate in TEXT_TYPES)


def is_utf8(values: pa.Array) -> pa.Array:
    """Per value of a binary array: whether it is well-formed UTF-8 (null stays null)."""
    return pc.match_substring_regex(values, _VALID_UTF8)


def as_text(values: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    """String or binary `values` as strings, a value that is not UTF-8 made a null.

    Also returns the mask of those values, None when every value is UTF-8: MariaDB and
    Python refuse bad text, so the caller rejects their rows.
    """
    as_binary = pc.cast(values, pa.binary())
    try:
        # The cast validates the whole batch at C speed: a clean batch pays nothing more.
        return pc.cast(as_binary, pa.string()), None
    except pa.ArrowInvalid:
        not_utf8 = pc.fill_null(pc.invert(is_utf8(as_binary)), False)
    return pc.cast(pc.if_else(not_utf8, pa.scalar(None, pa.binary()), as_binary), pa.string()), not_utf8


def decoded_without_huge(values: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    """A dictionary array decoded, each row of a value over HUGE_VALUE_BYTES made a null.

    Also returns the mask of those rows (None when there are none): the caller rejects them
    as too long. The huge values stay in the dictionary, once; no row copies them.
    """
    dictionary = values.dictionary
    if not is_text_type(dictionary.type):
        return values.dictionary_decode(), None
    huge_entries = pc.greater(pc.binary_length(dictionary), HUGE_VALUE_BYTES)
    if not pc.any(huge_entries).as_py():
        return values.dictionary_decode(), None
    kept = pc.if_else(huge_entries, pa.scalar(None, dictionary.type), dictionary)
    decoded = pa.DictionaryArray.from_arrays(values.indices, kept).dictionary_decode()
    huge = pc.fill_null(pc.take(huge_entries, values.indices), False)
    return decoded, huge


def longer_than(values: pa.Array, max_chars: int) -> pa.Array:
    """Per string: whether it holds more than `max_chars` characters (VARCHAR(n) counts characters, not bytes)."""
    return pc.greater(pc.utf8_length(values), max_chars)


def capped_text(values: pa.Array) -> list[str | None]:
    """Text `values` as Python strings to store with a rejected row, each cut at about 1 KiB with a mark.

    Taken as bytes and cut before they reach Python: a value may be huge or not UTF-8
    (bad bytes are shown hex-escaped).
    """
    if pa.types.is_dictionary(values.type):
        # Each distinct value capped once, then given to its rows: a huge value is never copied per row.
        capped = capped_text(values.dictionary)
        return [None if index is None else capped[index] for index in values.indices.to_pylist()]
    as_binary = pc.cast(values, pa.binary())
    lengths = pc.binary_length(as_binary).to_pylist()
    heads = pc.binary_slice(as_binary, 0, ORIGINAL_VALUE_MAX_BYTES).to_pylist()
    return [None if head is None else _shown_text(head, length) for head, length in zip(heads, lengths, strict=True)]


def _shown_text(head: bytes, length: int) -> str:
    """A value's first bytes as text, bad bytes hex-escaped, and a mark when it was cut."""
    if length <= ORIGINAL_VALUE_MAX_BYTES:
        return head.decode("utf-8", "backslashreplace")
    # The cut may fall inside a character: a decoder that is not told the input is final
    # holds those bytes back instead of escaping them.
    text = codecs.getincrementaldecoder("utf-8")("backslashreplace").decode(head, final=False)
    return f"{text}…[truncated, {length} bytes]"
