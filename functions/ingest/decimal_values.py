"""Decimal columns (Snowflake NUMBER(p,s)) checked and rounded as decimals, never through a float.

A float holds about 16 significant digits: NUMBER(38,16)'s 3.0000000000000001 is 3.0 as a
float, and pyarrow's cast of DECIMAL(38,5) to a float makes a whole 3 into 3.0000000000000004.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

DECIMAL128_MAX_PRECISION, DECIMAL_MAX_PRECISION = 38, 76  # decimal128's, decimal256's
# Beyond this a count is outside INT whatever its digits; below it, int64 holds it exactly.
INT_CANDIDATE_LIMIT = 2.0**40


def within(values: pa.Array, limit: float) -> tuple[pa.Array, pa.Array]:
    """The values under `limit` in magnitude, as a decimal with room for them and a rounding's
    carry (the others null), and the mask of the others.

    The mask is judged on a float: a value within a float's error of `limit` is well inside any
    bound a caller checks exactly afterwards.
    """
    beyond = pc.greater_equal(pc.abs(pc.cast(values, pa.float64(), safe=False)), limit)
    integer_digits = len(str(int(limit))) + 1
    scale = max(0, min(values.type.scale, DECIMAL_MAX_PRECISION - integer_digits))
    precision = integer_digits + scale
    room = (pa.decimal128 if precision <= DECIMAL128_MAX_PRECISION else pa.decimal256)(precision, scale)
    # Unsafe only where the scale is cut (past 68 places, far below any digit that matters here).
    return pc.cast(pc.if_else(pc.fill_null(beyond, False), None, values), room, safe=False), beyond


def whole_numbers(values: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(the whole values as int64, the not-whole mask, the mask of values too large for any INT)."""
    candidates, beyond = within(values, INT_CANDIDATE_LIMIT)
    # With no places there is no fraction: false (or null where the value is), and no floor to pay for.
    floors = candidates if values.type.scale <= 0 else pc.floor(candidates)
    not_whole = pc.not_equal(floors, candidates)
    if candidates.type.scale < values.type.scale:  # places past the 62nd cut: a digit there is a fraction too
        not_whole = pc.or_kleene(not_whole, pc.not_equal(pc.cast(candidates, values.type, safe=False), values))
    # A value beyond is refused for its size, not for a fraction no one computed.
    not_whole = pc.if_else(pc.fill_null(beyond, False), False, not_whole)
    whole = pc.if_else(pc.fill_null(not_whole, True), None, candidates)
    return pc.cast(whole, pa.int64()), not_whole, beyond


def rounded(values: pa.Array, scale: int, limit: float) -> tuple[pa.Array, pa.Array]:
    """Values under `limit` rounded half away from zero to `scale` places, as MariaDB's DECIMAL
    rounds them (the others null), and the mask of the others."""
    candidates, beyond = within(values, limit)
    if candidates.type.scale <= scale:
        return candidates, beyond
    return pc.round(candidates, scale, round_mode="half_towards_infinity"), beyond
