"""The signal columns: the one list the reader, the validation and the SQL take from.

A new column means: a migration, one entry here, and a test.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    """What a column holds, which decides how it is read and checked."""

    STRING = "string"
    INT = "int"  # MariaDB INT: -2^31 .. 2^31-1
    BOOL = "bool"
    RATE = "rate"  # DECIMAL(10,4)
    TIMESTAMP = "timestamp"  # MariaDB TIMESTAMP: 1970-01-01 00:00:01 .. 2038-01-19 03:14:07 UTC


@dataclass(frozen=True)
class Column:
    """One column of company_upsell_signals that the file feeds."""

    name: str
    kind: Kind
    max_length: int | None = None
    aliases: tuple[str, ...] = ()

    @property
    def parquet_names(self) -> tuple[str, ...]:
        """Names accepted in the file, compared case-insensitively."""
        return (self.name, *self.aliases)


KEY_COLUMN = "cdms_canonical_company_id"

SIGNAL_COLUMNS: tuple[Column, ...] = (
    Column(KEY_COLUMN, Kind.STRING, 64),
    # The seed export calls the legacy id COMPANY_ID.
    Column("legacy_company_id", Kind.STRING, 64, aliases=("company_id",)),
    Column("core_product", Kind.STRING, 16),
    Column("debut_product_tier", Kind.STRING, 32),
    Column("current_product_tier", Kind.STRING, 32),
    Column("is_active_customer", Kind.BOOL),
    Column("initial_billed_ee_count", Kind.INT),
    Column("most_recent_paid_ee_count", Kind.INT),
    Column("ee_growth", Kind.INT),
    Column("ee_growth_rate", Kind.RATE),
    Column("count_icp_members_active", Kind.INT),
    Column("count_icp_members_all_time", Kind.INT),
    Column("count_eor_members_active", Kind.INT),
    Column("count_eor_members_all_time", Kind.INT),
    Column("count_remote_employees_active_since_premiere", Kind.INT),
    Column("last_remote_employee_invited_at", Kind.TIMESTAMP),
    Column("count_full_time_employees_active_since_premiere", Kind.INT),
    Column("last_full_time_employee_invited_at", Kind.TIMESTAMP),
    Column("last_hi_app_started_at", Kind.TIMESTAMP),
    Column("num_days_since_hi_app_started", Kind.INT),
    Column("has_signal_active_icp_without_eor", Kind.BOOL),
    Column("has_signal_past_icp_without_eor", Kind.BOOL),
    Column("has_signal_two_plus_remote_employees", Kind.BOOL),
    Column("has_signal_payroll_growth_25_pct", Kind.BOOL),
    Column("has_signal_peo_growth_10_pct", Kind.BOOL),
    Column("has_signal_peo_basic_five_plus_hires", Kind.BOOL),
    Column("has_signal_hi_app_started_not_submitted", Kind.BOOL),
    Column("model_updated_at", Kind.TIMESTAMP),
)

COLUMN_NAMES: tuple[str, ...] = tuple(column.name for column in SIGNAL_COLUMNS)

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
RATE_PRECISION, RATE_SCALE = 10, 4
# TIMESTAMP's range in UTC, in seconds since the epoch (0 itself is MariaDB's "zero date").
TIMESTAMP_MIN_SECONDS, TIMESTAMP_MAX_SECONDS = 1, 2**31 - 1
