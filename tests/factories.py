"""Realistic signal files, generated with a seed, written the way different tools write them.

Used by the tests, `make bench` and `make demo`. Columns are built with pyarrow compute
(no per-row Python), so a million rows take a couple of seconds.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from functions.ingest.columns import SIGNAL_COLUMNS, Kind

PRODUCTS = pa.array(["peo", "payroll", "eor", "hi", "contractor"])
TIERS = pa.array(["basic", "plus", "premier", "select", "enterprise"])
EPOCH_2020_MS = 1_577_836_800_000
SIX_YEARS_MS = 6 * 365 * 86_400_000
MODEL_RUN = dt.datetime(2026, 1, 30, 5, 12, 44, 123000)


class Randomness:
    """Seeded uniform draws via pyarrow.compute.random, one stream per column."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._draws = 0

    def uniform(self, count: int) -> pa.Array:
        self._draws += 1
        return pc.random(count, initializer=self._seed * 1_000_003 + self._draws)

    def integers(self, count: int, low: int, high: int) -> pa.Array:
        return pc.cast(pc.floor(pc.add(pc.multiply(self.uniform(count), high - low + 1), low)), pa.int64())

    def mask(self, count: int, probability: float) -> pa.Array:
        return pc.less(self.uniform(count), probability)

    def with_nulls(self, values: pa.Array, probability: float) -> pa.Array:
        return pc.if_else(self.mask(len(values), probability), pa.scalar(None, values.type), values)


def company_ids(ids: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise("cdms-", pc.utf8_lpad(pc.cast(ids, pa.string()), 9, "0"), "")


def _column(column_kind: Kind, name: str, ids: pa.Array, rng: Randomness) -> pa.Array:
    count = len(ids)
    if name == "cdms_canonical_company_id":
        return company_ids(ids)
    if name == "legacy_company_id":
        return pc.binary_join_element_wise("peo_", pc.cast(ids, pa.string()), "")
    if column_kind is Kind.STRING:
        choices = PRODUCTS if name == "core_product" else TIERS
        return rng.with_nulls(choices.take(rng.integers(count, 0, len(choices) - 1)), 0.02)
    if column_kind is Kind.BOOL:
        return rng.with_nulls(rng.mask(count, 0.3), 0.01)
    if column_kind is Kind.INT:
        low = -500 if name == "ee_growth" else 0
        # Snowflake unloads NUMBER(38,0) as DECIMAL(38,0).
        return rng.with_nulls(pc.cast(rng.integers(count, low, 5000), pa.decimal128(38, 0)), 0.05)
    if column_kind is Kind.RATE:
        # Snowflake FLOAT, already at four decimals like the model computes it.
        return rng.with_nulls(pc.round(pc.subtract(pc.multiply(rng.uniform(count), 3.0), 1.0), 4), 0.05)
    # Snowflake TIMESTAMP_NTZ unloads as naive milliseconds.
    millis = pc.add(rng.integers(count, 0, SIX_YEARS_MS), EPOCH_2020_MS)
    timestamps = pc.cast(millis, pa.timestamp("ms"))
    return timestamps if name == "model_updated_at" else rng.with_nulls(timestamps, 0.2)


def snowflake_table(rows: int, seed: int = 7, first_id: int = 1) -> pa.Table:
    """A day's file as Snowflake unloads it: UPPERCASE, COMPANY_ID, DECIMAL counts, ms timestamps."""
    rng = Randomness(seed)
    ids = pa.array(range(first_id, first_id + rows), pa.int64())
    arrays = {}
    for column in SIGNAL_COLUMNS:
        parquet_name = "COMPANY_ID" if column.name == "legacy_company_id" else column.name.upper()
        arrays[parquet_name] = _column(column.kind, column.name, ids, rng)
    return pa.table(arrays)


def day_two(
    day_one: pa.Table,
    seed: int = 8,
    changed: float = 0.10,
    new: float = 0.01,
    gone: float = 0.01,
    model_run_everywhere: bool = False,
) -> pa.Table:
    """The next day's file: `changed` of rows altered, `gone` dropped, `new` added.

    With model_run_everywhere, MODEL_UPDATED_AT is the model's run time on every row
    (every row then differs from yesterday in that column).
    """
    rng = Randomness(seed)
    count = day_one.num_rows
    keep = pc.invert(rng.mask(count, gone))
    change = rng.mask(count, changed)
    paid = day_one["MOST_RECENT_PAID_EE_COUNT"].combine_chunks()
    bumped = pc.cast(pc.add(pc.cast(pc.fill_null(paid, 0), pa.int64()), 1), pa.decimal128(38, 0))
    tier = day_one["CURRENT_PRODUCT_TIER"].combine_chunks()
    table = day_one.set_column(
        day_one.schema.get_field_index("MOST_RECENT_PAID_EE_COUNT"), "MOST_RECENT_PAID_EE_COUNT", pc.if_else(change, bumped, paid)
    )
    table = table.set_column(
        table.schema.get_field_index("CURRENT_PRODUCT_TIER"),
        "CURRENT_PRODUCT_TIER",
        pc.if_else(change, pc.binary_join_element_wise(pc.fill_null(tier, "basic"), "-upgraded", ""), tier),
    )
    table = table.filter(keep)
    first_new_id = count + 1_000_000_000
    additions = snowflake_table(max(1, int(count * new)), seed=seed + 1, first_id=first_new_id)
    table = pa.concat_tables([table, additions.cast(table.schema)])
    if model_run_everywhere:
        index = table.schema.get_field_index("MODEL_UPDATED_AT")
        run_time = pa.array([MODEL_RUN] * table.num_rows, pa.timestamp("ms"))
        table = table.set_column(index, "MODEL_UPDATED_AT", run_time)
    return table


def write_pyarrow(table: pa.Table, path: Path, row_group_rows: int = 128_000) -> Path:
    """Snowflake-style file written by pyarrow (snappy, several row groups)."""
    pq.write_table(table, path, row_group_size=row_group_rows, compression="snappy")
    return path


def write_duckdb(table: pa.Table, path: Path) -> Path:
    """The same rows written by DuckDB's own Parquet writer (its types, its row groups)."""
    import duckdb

    connection = duckdb.connect()
    connection.register("signals", table)
    connection.execute(f"COPY (SELECT * FROM signals) TO '{path}' (FORMAT parquet, COMPRESSION zstd)")
    connection.close()
    return path


def write_spark_style(table: pa.Table, path: Path) -> Path:
    """As Spark writes it: lower-case names, LEGACY_COMPANY_ID, INT96 timestamps, int64 counts,
    dictionary-encoded strings read back as dictionaries, and an extra column."""
    renamed = {name: ("legacy_company_id" if name == "COMPANY_ID" else name.lower()) for name in table.column_names}
    columns = []
    for name in table.column_names:
        values = table[name]
        if pa.types.is_decimal(values.type):
            values = pc.cast(values, pa.int64())
        columns.append(values)
    spark_table = pa.table(dict(zip([renamed[n] for n in table.column_names], columns, strict=True)))
    spark_table = spark_table.append_column("_spark_partition_id", pa.array([0] * spark_table.num_rows, pa.int32()))
    pq.write_table(spark_table, path, use_deprecated_int96_timestamps=True, row_group_size=50_000)
    return path
