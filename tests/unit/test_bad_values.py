"""One bad value is one rejected row: invalid UTF-8, null-typed columns, huge values (no database)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from functions.ingest.columns import SIGNAL_COLUMNS, Kind
from functions.ingest.validation import validate_batch
from tests.unit.test_validation import batch_with

NULL_TYPED = {
    Kind.STRING: ("core_product", pa.string()),
    Kind.INT: ("ee_growth", pa.int64()),
    Kind.BOOL: ("is_active_customer", pa.bool_()),
    Kind.RATE: ("ee_growth_rate", pa.decimal128(10, 4)),
    Kind.TIMESTAMP: ("last_hi_app_started_at", pa.timestamp("s")),
}


@pytest.mark.parametrize("kind", list(NULL_TYPED), ids=[kind.value for kind in NULL_TYPED])
def test_a_null_typed_column_becomes_nulls_of_the_columns_own_type(kind: Kind) -> None:
    # Given a column of Parquet's null type (pandas writes an all-None column so)
    name, stored_type = NULL_TYPED[kind]

    # When the batch is validated, both rows load with nulls of the column's own type
    result = validate_batch(batch_with(**{name: pa.nulls(2)}), 0)

    assert result.rejected_rows == []
    assert result.valid_rows.column(name).to_pylist() == [None, None]
    assert result.valid_rows.schema.field(name).type == stored_type


def test_every_column_null_typed_at_once_rejects_only_for_the_missing_key() -> None:
    result = validate_batch(batch_with(**{column.name: pa.nulls(2) for column in SIGNAL_COLUMNS}), 0)
    assert [row.reasons for row in result.rejected_rows] == ["blank or missing cdms_canonical_company_id"] * 2
    assert result.valid_rows.num_rows == 0
