"""What a rejected row keeps of its values: each as JSON can hold it, text capped (text_checks.py)."""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest.text_checks import capped_text, is_text_type


def json_safe(value: Any) -> Any:
    """NaN and infinities as text: JSON has no literal for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def original_values(values: pa.Array) -> list[Any]:
    """A rejected batch's column as Python values to store; text capped at about 1 KiB."""
    if pa.types.is_dictionary(values.type):
        if is_text_type(values.type.value_type):
            return capped_text(values)  # capped before decoding: a value may be huge
        values = values.dictionary_decode()
    if pa.types.is_temporal(values.type):
        # Arrow's own text: Python's datetime stops at year 9999 and at the microsecond, and
        # a value past either (the very values rejected for their range) would fail the file.
        if pa.types.is_timestamp(values.type) and values.type.tz is not None:
            # The UTC instant, without asking the tz database for the zone's name (it may not know it).
            values = pc.cast(values, pa.timestamp(values.type.unit))
            return [None if text is None else f"{text}Z" for text in pc.cast(values, pa.string()).to_pylist()]
        return list(pc.cast(values, pa.string()).to_pylist())
    if not is_text_type(values.type):
        return list(values.to_pylist())
    return capped_text(values)
