"""The row fingerprint the server stores equals the one the ingest computes, for any value the file may hold."""

from __future__ import annotations

import datetime as dt
import decimal
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pymysql
import pytest

from functions.ingest.columns import COLUMN_NAMES, INT_MAX, INT_MIN, KEY_COLUMN, SIGNAL_COLUMNS, Kind
from functions.ingest.repository import Repository
from functions.ingest.row_fingerprints import canonical_texts, fingerprint_sql, fingerprints
from functions.ingest.validation import validate_batch
from tests.integration.conftest import query
from tests.nasty_strings import FIXED_CASES, UNICODE, random_strings

REPO_ROOT = Path(__file__).resolve().parents[2]
ROWS = 400


def _values(kind: Kind, column_length: int | None, rng: random.Random, strings: list[str]) -> list[Any]:
    """ROWS values of a column's kind, edges first, about one in six NULL."""
    if kind is Kind.STRING:
        assert column_length is not None
        edges: list[Any] = [s[:column_length] for s in (*FIXED_CASES, UNICODE, "\x1f", "3:abc", "a\x1fb", "")]
        pool = edges + [s[:column_length] for s in strings]
    elif kind is Kind.INT:
        pool = [INT_MIN, INT_MAX, 0, -1, 1, 10, 100] + [rng.randint(INT_MIN, INT_MAX) for _ in range(ROWS)]
    elif kind is Kind.BOOL:
        pool = [True, False] * ROWS
    elif kind is Kind.RATE:
        pool = [decimal.Decimal(text) for text in ("0", "-0.0001", "0.0001", "999999.9999", "-999999.9999", "1.5", "-0.45")]
        pool += [decimal.Decimal(rng.randint(-(10**10) + 1, 10**10 - 1)).scaleb(-4) for _ in range(ROWS)]
    else:
        edges = [dt.datetime(1970, 1, 1, 0, 0, 1), dt.datetime(2038, 1, 19, 3, 14, 7), dt.datetime(2026, 3, 29, 1, 30)]
        pool = edges + [dt.datetime(1971, 1, 1) + dt.timedelta(seconds=rng.randint(0, 2_000_000_000)) for _ in range(ROWS)]
    values = [None if rng.random() < 1 / 6 else pool[index % len(pool)] for index in range(ROWS)]
    return values


def _validated_rows(seed: int) -> pa.Table:
    rng = random.Random(seed)
    strings = random_strings(seed, ROWS, 64)
    columns: dict[str, pa.Array] = {}
    for column in SIGNAL_COLUMNS:
        if column.name == KEY_COLUMN:
            columns[column.name] = pa.array([f"{index}:{strings[index][:40]}\x1f" for index in range(ROWS)], pa.string())
            continue
        arrow_type = {
            Kind.STRING: pa.string(),
            Kind.INT: pa.int64(),
            Kind.BOOL: pa.bool_(),
            Kind.RATE: pa.decimal128(10, 4),
            Kind.TIMESTAMP: pa.timestamp("s"),
        }[column.kind]
        columns[column.name] = pa.array(_values(column.kind, column.max_length, rng, strings), arrow_type)
    validated = validate_batch(pa.RecordBatch.from_pydict(columns), 0)
    assert not validated.rejected_rows, validated.rejected_rows[:3]
    return validated.valid_rows


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_server_computes_the_fingerprint_the_ingest_computes(db: pymysql.Connection[Any], seed: int) -> None:
    """Given rows of every edge value and NULLs, written by the ingest's INSERT path,
    When the server computes their fingerprints, in a session of another time zone, as the compare reads them,
    Then each equals the one computed from the Arrow rows."""
    rows = _validated_rows(seed)
    Repository(db).signals.insert_signal_rows(rows.select(list(COLUMN_NAMES)))
    db.commit()
    db.cursor().execute("SET time_zone = '+05:30'")
    read = query(db, f"SELECT {KEY_COLUMN}, {fingerprint_sql()} AS fingerprint FROM company_upsell_signals")
    stored = {row[KEY_COLUMN]: row["fingerprint"] for row in read}
    computed = dict(zip(rows.column(KEY_COLUMN).to_pylist(), fingerprints(rows), strict=True))
    assert len(stored) == ROWS
    differing = [key for key in computed if stored[key] != computed[key]]
    assert not differing, f"{len(differing)} rows differ, e.g. {differing[:1]}"


def test_a_change_of_any_one_value_changes_the_fingerprint() -> None:
    """A value moved across a field boundary, a NULL for an empty string, a second off: each is another text."""
    base = _validated_rows(4).slice(0, 1)
    texts = set(canonical_texts(base).to_pylist())
    variants = 0
    for column in SIGNAL_COLUMNS:
        value = base.column(column.name)[0].as_py()
        for other in _others(column.kind, value):
            changed = base.set_column(
                base.schema.get_field_index(column.name), column.name, pa.array([other], base.schema.field(column.name).type)
            )
            text = canonical_texts(changed)[0].as_py()
            assert text not in texts, (column.name, value, other)
            texts.add(text)
            variants += 1
    assert variants > 3 * len(SIGNAL_COLUMNS)


def _others(kind: Kind, value: Any) -> list[Any]:
    if kind is Kind.STRING:
        candidates = dict.fromkeys(("", None, "x", "\x1f", "1:x", (value or "") + "\x1f"))
        return [candidate for candidate in candidates if candidate != value]
    if kind is Kind.TIMESTAMP:
        base = value or dt.datetime(2026, 1, 1)
        return [
            candidate for candidate in (None, base + dt.timedelta(seconds=1), base - dt.timedelta(hours=1)) if candidate != value
        ]
    if kind is Kind.RATE:
        return [candidate for candidate in (None, decimal.Decimal("0.0001"), decimal.Decimal("-1.5")) if candidate != value]
    if kind is Kind.BOOL:
        return [candidate for candidate in (None, True, False) if candidate != value]
    return [candidate for candidate in (None, 0, -1, 12) if candidate != value]
