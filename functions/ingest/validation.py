"""Normalise one record batch to the table's types and find the rows MariaDB would refuse.

Everything is vectorised with pyarrow compute; no Python loop runs over rows except to
describe the (few) rejected ones. A row is rejected, never loaded and never silently
changed, when a value would not fit its column; each rule adds a reason. One bad value is
one rejected row, never a failed file: text that is not UTF-8 and huge values included
(the text rules, and how a rejected value is kept, are in text_checks.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest import decimal_values
from functions.ingest.columns import (
    INT_MAX,
    INT_MIN,
    KEY_COLUMN,
    RATE_PRECISION,
    RATE_SCALE,
    SIGNAL_COLUMNS,
    TIMESTAMP_MAX_SECONDS,
    TIMESTAMP_MIN_SECONDS,
    Column,
    Kind,
)
from functions.ingest.rejected_values import json_safe, original_values
from functions.ingest.text_checks import TEXT_TYPES, as_text, decoded_without_huge, longer_than

SOURCE_ROW = "source_row"
RATE_LIMIT = 10 ** (RATE_PRECISION - RATE_SCALE)  # DECIMAL(10,4) holds |x| < 10^6
RATE_TYPE = pa.decimal128(RATE_PRECISION, RATE_SCALE)
# upsell_signal_rejected_rows.reasons is VARCHAR(2048).
REASONS_MAX_CHARS = 2048
REASONS_CUT_MARK = "…[truncated]"


@dataclass(frozen=True)
class RejectedRow:
    """One row that was not loaded: where it was, its key if any, why, and what it held."""

    source_row: int
    company_id: str | None
    reasons: str
    original_values_json: str


@dataclass(frozen=True)
class ValidatedBatch:
    """A batch split into rows ready for staging (normalised types) and rejected rows."""

    valid_rows: pa.Table
    rejected_rows: list[RejectedRow]
    rows_read: int


class _Checks:
    """Collects (mask, reason) pairs for one batch."""

    def __init__(self) -> None:
        self.reasons: list[pa.Array] = []

    def add(self, failed: pa.Array, reason: str | pa.Array) -> None:
        failed = pc.fill_null(failed, False)
        if pc.any(failed).as_py():
            self.reasons.append(pc.if_else(failed, reason, pa.scalar(None, pa.string())))

    def combined(self, length: int) -> pa.Array:
        if not self.reasons:
            return pa.nulls(length, pa.string())
        combined = self.reasons[0]
        for reason in self.reasons[1:]:
            # Joined where both hold a reason, else whichever does. (binary_join_element_wise
            # with null_handling="skip" drops all-null rows in pyarrow 26: not used.)
            combined = pc.coalesce(pc.binary_join_element_wise(combined, reason, "; "), combined, reason)
        return combined


def _is_type(data_type: pa.DataType, *predicates: Any) -> bool:
    return any(predicate(data_type) for predicate in predicates)


def _normalise_string(column: Column, values: pa.Array, checks: _Checks) -> pa.Array:
    assert column.max_length is not None
    too_long = f"{column.name} longer than {column.max_length} characters"
    huge = None
    if pa.types.is_dictionary(values.type):
        # A huge value (the reader keeps a column holding one as a dictionary) is rejected
        # as too long without being copied into each of its rows.
        values, huge = decoded_without_huge(values)
        if huge is not None:
            checks.add(huge, too_long)
    not_utf8 = None
    if pa.types.is_integer(values.type) or pa.types.is_decimal(values.type):  # ids unloaded as numbers: their digits
        values = pc.cast(values, pa.string())
    else:
        values, not_utf8 = as_text(values)
        if not_utf8 is not None:
            checks.add(not_utf8, f"{column.name} is not valid UTF-8")
    if column.name == KEY_COLUMN:
        blank = pc.or_kleene(pc.is_null(values), pc.equal(pc.utf8_trim_whitespace(values), ""))
        # A key nulled for bad bytes, or for being huge, was not blank: it has its own reason.
        for nulled in (not_utf8, huge):
            if nulled is not None:
                blank = pc.and_(blank, pc.invert(nulled))
        checks.add(blank, f"blank or missing {column.name}")
    checks.add(longer_than(values, column.max_length), too_long)
    return values


def _normalise_int(column: Column, values: pa.Array, checks: _Checks) -> pa.Array:
    data_type = values.type
    if pa.types.is_boolean(data_type):
        return pc.cast(values, pa.int64())
    if pa.types.is_integer(data_type):
        if pa.types.is_unsigned_integer(data_type):
            too_big = pc.greater(values, pa.scalar(INT_MAX, data_type)) if data_type.bit_width >= 32 else None
            out_of_range = too_big
        else:
            out_of_range = pc.or_kleene(pc.less(values, INT_MIN), pc.greater(values, INT_MAX))
        if out_of_range is None:
            return pc.cast(values, pa.int64())
        checks.add(out_of_range, f"{column.name} outside INT range")
        return pc.cast(pc.if_else(pc.fill_null(out_of_range, False), None, values), pa.int64(), safe=False)
    if pa.types.is_decimal(data_type):
        numbers, not_whole, beyond = decimal_values.whole_numbers(values)
        out_of_range = pc.or_kleene(beyond, pc.or_kleene(pc.less(numbers, INT_MIN), pc.greater(numbers, INT_MAX)))
    else:
        # Floats (pandas-written nullable ints): exact integers only. float64 represents every
        # integer near INT's bounds exactly.
        numbers = pc.cast(values, pa.float64(), safe=False)
        not_whole = pc.or_kleene(pc.invert(pc.is_finite(numbers)), pc.not_equal(pc.floor(numbers), numbers))
        out_of_range = pc.or_kleene(pc.less(numbers, INT_MIN), pc.greater(numbers, INT_MAX))
    checks.add(not_whole, f"{column.name} is not a whole number")
    checks.add(pc.and_kleene(pc.invert(not_whole), out_of_range), f"{column.name} outside INT range")
    bad = pc.fill_null(pc.or_kleene(not_whole, out_of_range), False)
    return pc.cast(pc.if_else(bad, None, numbers), pa.int64())


def _normalise_bool(column: Column, values: pa.Array, checks: _Checks) -> pa.Array:
    if pa.types.is_boolean(values.type):
        return values
    # 0/1 integers (or NUMBER(1,0), or pandas' 0.0/1.0 floats) are accepted as booleans; anything else is not.
    if pa.types.is_decimal(values.type):
        # A fraction a float cannot hold (1.00000000000000000001) is not 0 or 1 either: 2 stands for it.
        whole, not_whole, beyond = decimal_values.whole_numbers(values)
        values = pc.if_else(pc.fill_null(pc.or_kleene(not_whole, beyond), False), pa.scalar(2, pa.int64()), whole)
    as_float = pc.cast(values, pa.float64(), safe=False)
    # Compared, not looked up: -0.0 (pandas' negation or rounding of 0) is 0 too.
    not_boolean = pc.invert(pc.or_kleene(pc.equal(as_float, 0.0), pc.equal(as_float, 1.0)))
    checks.add(pc.and_kleene(pc.is_valid(as_float), not_boolean), f"{column.name} is not a boolean (true/false or 0/1)")
    return pc.if_else(pc.fill_null(not_boolean, True), None, pc.equal(as_float, 1.0))


def _normalise_rate(column: Column, values: pa.Array, checks: _Checks) -> pa.Array:
    # MariaDB rounds extra decimals half away from zero; doing it here keeps both load
    # methods identical and lets the range check see the stored value.
    if pa.types.is_decimal(values.type):
        rounded, beyond = decimal_values.rounded(values, RATE_SCALE, limit=2 * RATE_LIMIT)
    else:
        rounded = pc.round(pc.cast(values, pa.float64(), safe=False), RATE_SCALE, round_mode="half_towards_infinity")
        beyond = pc.invert(pc.is_finite(rounded))
    # The rounded value is exact to 4 places, so a float of it falls on the right side of the limit.
    outside = pc.greater_equal(pc.abs(pc.cast(rounded, pa.float64(), safe=False)), RATE_LIMIT)
    invalid = pc.or_kleene(beyond, outside)
    checks.add(invalid, f"{column.name} outside DECIMAL({RATE_PRECISION},{RATE_SCALE})")
    return pc.cast(pc.if_else(pc.fill_null(invalid, False), None, rounded), RATE_TYPE)


def _normalise_timestamp(column: Column, values: pa.Array, checks: _Checks) -> pa.Array:
    if pa.types.is_date(values.type):
        values = pc.cast(values, pa.timestamp("s"))
    # Zoned timestamps are stored as UTC instants, naive ones are taken as UTC: dropping
    # the zone keeps the UTC value. Sub-second parts are cut, as TIMESTAMP(0) does.
    seconds = pc.cast(pc.cast(values, pa.timestamp(values.type.unit)), pa.timestamp("s"), safe=False)
    epoch_seconds = pc.cast(seconds, pa.int64())
    out_of_range = pc.or_kleene(pc.less(epoch_seconds, TIMESTAMP_MIN_SECONDS), pc.greater(epoch_seconds, TIMESTAMP_MAX_SECONDS))
    checks.add(out_of_range, f"{column.name} outside TIMESTAMP range (1970-01-01 00:00:01 to 2038-01-19 03:14:07 UTC)")
    return pc.if_else(pc.fill_null(out_of_range, False), None, seconds)


_NORMALISERS = {
    Kind.STRING: _normalise_string,
    Kind.INT: _normalise_int,
    Kind.BOOL: _normalise_bool,
    Kind.RATE: _normalise_rate,
    Kind.TIMESTAMP: _normalise_timestamp,
}

# The stored type of each kind: a column of Parquet's null type (pandas writes an all-None
# column so) is read as nulls of its own column's type.
_NULLS_AS = {
    Kind.STRING: pa.string(),
    Kind.INT: pa.int64(),
    Kind.BOOL: pa.bool_(),
    Kind.RATE: RATE_TYPE,
    Kind.TIMESTAMP: pa.timestamp("s"),
}

_ACCEPTED_TYPES = {
    Kind.STRING: (*TEXT_TYPES, pa.types.is_integer, lambda t: pa.types.is_decimal(t) and t.scale == 0),
    Kind.INT: (pa.types.is_integer, pa.types.is_decimal, pa.types.is_floating, pa.types.is_boolean),
    Kind.BOOL: (pa.types.is_boolean, pa.types.is_integer, pa.types.is_decimal, pa.types.is_floating),
    Kind.RATE: (pa.types.is_floating, pa.types.is_decimal, pa.types.is_integer),
    Kind.TIMESTAMP: (pa.types.is_timestamp, pa.types.is_date),
}


def accepts_type(column: Column, data_type: pa.DataType) -> bool:
    """Whether a Parquet column of `data_type` can feed `column` (dictionaries by their values)."""
    if pa.types.is_dictionary(data_type):
        data_type = data_type.value_type
    return _is_type(data_type, *_ACCEPTED_TYPES[column.kind]) or pa.types.is_null(data_type)


def _capped_reasons(reasons: str) -> str:
    if len(reasons) <= REASONS_MAX_CHARS:
        return reasons
    return reasons[: REASONS_MAX_CHARS - len(REASONS_CUT_MARK)] + REASONS_CUT_MARK


def _takeable(values: pa.Array) -> pa.Array:
    """View-typed text as bytes (kept unvalidated, shown like binary): `take` has no kernel for views."""
    if pa.types.is_string_view(values.type) or pa.types.is_binary_view(values.type):
        return pc.cast(values, pa.large_binary())
    return values


def _describe_rejected(batch: pa.RecordBatch, row_numbers: pa.Array, reasons: pa.Array) -> list[RejectedRow]:
    rejected_indices = pc.indices_nonzero(pc.is_valid(reasons))
    if len(rejected_indices) == 0:
        return []
    rejected_batch = pa.RecordBatch.from_arrays([_takeable(column) for column in batch.columns], names=batch.schema.names)
    rejected_batch = rejected_batch.take(rejected_indices)
    originals = {name: original_values(rejected_batch.column(name)) for name in rejected_batch.schema.names}
    reason_texts = reasons.take(rejected_indices).to_pylist()
    rejected = []
    rejected_row_numbers = row_numbers.take(rejected_indices).to_pylist()
    for position, (row_number, reason) in enumerate(zip(rejected_row_numbers, reason_texts, strict=True)):
        original = {name: values[position] for name, values in originals.items()}
        company_id = original.get(KEY_COLUMN)
        rejected.append(
            RejectedRow(
                source_row=row_number,
                company_id=None if company_id is None else str(company_id)[:255],
                reasons=_capped_reasons(reason),
                original_values_json=json.dumps(
                    {name: json_safe(value) for name, value in original.items()}, default=str, ensure_ascii=False
                ),
            )
        )
    return rejected


NO_DUPLICATES = pa.table({"key": pa.array([], pa.string()), "copies": pa.array([], pa.int64())})


def _check_duplicates(keys: pa.Array, duplicates: pa.Table, checks: _Checks) -> None:
    """Reject every copy of a key the whole file holds more than once."""
    if duplicates.num_rows == 0:
        return
    position = pc.index_in(pc.cast(keys, pa.string()), value_set=duplicates.column("key").combine_chunks())
    copies = pc.take(duplicates.column("copies").combine_chunks(), position)
    checks.add(
        pc.is_valid(position),
        pc.binary_join_element_wise(f"{KEY_COLUMN} appears ", pc.cast(copies, pa.string()), " times in the file", ""),
    )


def validate_batch(
    batch: pa.RecordBatch, first_row: int, duplicates: pa.Table = NO_DUPLICATES, *, row_numbers: pa.Array | None = None
) -> ValidatedBatch:
    """Normalise `batch` (canonical column names) and split valid from rejected rows.

    `first_row` is the batch's position in the file; it numbers the rows, unless
    `row_numbers` gives each row's own (a batch of rows taken from a chunk). `duplicates`
    (key, copies) lists the keys the whole file holds more than once.
    """
    checks = _Checks()
    if row_numbers is None:
        row_numbers = pa.array(range(first_row, first_row + batch.num_rows), pa.int64())
    normalised: dict[str, pa.Array] = {SOURCE_ROW: row_numbers}
    for column in SIGNAL_COLUMNS:
        values = batch.column(column.name)
        if pa.types.is_null(values.type) or (pa.types.is_dictionary(values.type) and pa.types.is_null(values.type.value_type)):
            values = pa.nulls(batch.num_rows, _NULLS_AS[column.kind])
        normalised[column.name] = _NORMALISERS[column.kind](column, values, checks)
    _check_duplicates(normalised[KEY_COLUMN], duplicates, checks)
    reasons = checks.combined(batch.num_rows)
    table = pa.table(normalised)
    rejected = _describe_rejected(batch, row_numbers, reasons)
    valid_rows = table.filter(pc.is_null(reasons)) if rejected else table
    return ValidatedBatch(valid_rows=valid_rows, rejected_rows=rejected, rows_read=batch.num_rows)
