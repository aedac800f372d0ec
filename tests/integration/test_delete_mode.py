"""MISSING_ROWS=delete removes only companies truly absent from the file: a rejected row keeps what we had."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pymysql
import pytest

from functions.ingest import compared_pass
from functions.ingest.change_detection import FileComparison
from functions.shared.errors import GuardTripped
from tests.factories import snowflake_table
from tests.integration.conftest import DAY_ONE, DAY_TWO, expected_rows, table_rows

DELETE = {"MISSING_ROWS": "delete", "GUARD_MAX_REJECT_RATIO": "0.5"}


def with_cells(table: pa.Table, column: str, cells: dict[int, Any]) -> pa.Table:
    values = table[column].to_pylist()
    for row, value in cells.items():
        values[row] = value
    index = table.schema.get_field_index(column)
    return table.set_column(index, table.schema.field(index), pa.array(values, table.schema.field(index).type))


def test_companies_whose_rows_are_rejected_are_kept_and_only_absent_ones_deleted(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]
) -> None:
    # Given 1,000 companies published, and a day two in which 20 are absent, 30 have a bad
    # value, and one key is listed twice (so both of its copies are rejected)
    day_one_table = snowflake_table(1_000, seed=301)
    upload(DAY_ONE, day_one_table)
    run_sync(DAY_ONE)
    day_two_table = with_cells(day_one_table, "CORE_PRODUCT", {row: "x" * 40 for row in range(100, 130)})
    day_two_table = with_cells(day_two_table, "CDMS_CANONICAL_COMPANY_ID", {201: day_one_table["CDMS_CANONICAL_COMPANY_ID"][200]})
    day_two_table = day_two_table.slice(0, 980)
    upload(DAY_TWO, day_two_table)

    # When it is synced in delete mode
    result = run_sync(DAY_TWO, env=DELETE)

    # Then exactly the 20 absent companies (and the one whose key moved) are deleted; the rejected ones
    # keep their day-one rows
    stays = expected_rows(day_one_table.slice(0, 980))
    del stays[day_one_table["CDMS_CANONICAL_COMPANY_ID"][201].as_py()]  # its row now names another company
    assert (result.status, result.rows_rejected, result.rows_deleted) == ("completed", 32, 21)
    assert table_rows(db) == stays


def test_the_delete_ratio_guard_judges_only_companies_truly_absent(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]
) -> None:
    # Given 1,000 companies published, and a day two in which 50 are absent (5%) and 80 rejected (8%)
    day_one_table = snowflake_table(1_000, seed=302)
    upload(DAY_ONE, day_one_table)
    run_sync(DAY_ONE)
    day_two_table = with_cells(day_one_table, "EE_GROWTH_RATE", dict.fromkeys(range(0, 80), 5_000_000.0)).slice(0, 950)
    upload(DAY_TWO, day_two_table)

    # When it is synced in delete mode with the default 10% delete_ratio guard
    result = run_sync(DAY_TWO, env=DELETE)

    # Then 5% is under the guard: the sync completes and deletes the 50 absent companies only
    assert (result.status, result.rows_rejected, result.rows_deleted) == ("completed", 80, 50)
    assert len(table_rows(db)) == 950


def test_the_delete_ratio_guard_still_trips_on_truly_absent_companies(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]
) -> None:
    # Given 1,000 companies published, and a day two in which 150 are absent and 10 rejected
    day_one_table = snowflake_table(1_000, seed=303)
    upload(DAY_ONE, day_one_table)
    run_sync(DAY_ONE)
    upload(DAY_TWO, with_cells(day_one_table, "CORE_PRODUCT", {row: "y" * 20 for row in range(10)}).slice(0, 850))
    before = table_rows(db)

    # When it is synced in delete mode, then the guard counts the 150, not 160
    with pytest.raises(GuardTripped, match=r"delete_ratio: 150 of 1000 rows would be deleted"):
        run_sync(DAY_TWO, env=DELETE)
    assert table_rows(db) == before


def test_a_row_a_person_makes_equal_to_the_file_mid_sync_is_kept_not_deleted(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 1,000 companies published, and a day two in which 50 rows changed and 20 companies are absent
    day_one_table = snowflake_table(1_000, seed=304)
    upload(DAY_ONE, day_one_table)
    run_sync(DAY_ONE)
    day_two_table = with_cells(day_one_table, "EE_GROWTH", dict.fromkeys(range(50), 12_345)).slice(0, 980)
    upload(DAY_TWO, day_two_table)
    # and a person who, just after the compare found row 5 changed, sets it by hand to what the file says
    hand_edited = day_one_table["CDMS_CANONICAL_COMPANY_ID"][5].as_py()
    real_compare = compared_pass.compare_file
    compares: list[int] = []

    def compare_then_edit_by_hand(*args: Any, **kwargs: Any) -> FileComparison:
        comparison = real_compare(*args, **kwargs)
        compares.append(comparison.rows_to_stage)
        with db.cursor() as cursor:
            cursor.execute(
                "UPDATE company_upsell_signals SET ee_growth = 12345 WHERE cdms_canonical_company_id = %s", (hand_edited,)
            )
        db.commit()
        return comparison

    monkeypatch.setattr(compared_pass, "compare_file", compare_then_edit_by_hand)

    # When day two is synced in delete mode
    result = run_sync(DAY_TWO, env=DELETE)

    # Then the company is kept (the change list left it out as equal, so its key is kept by
    # name), on the first attempt: only the 20 absent companies are deleted, nothing is
    # rolled back and compared again, and the table equals the file
    assert (result.status, result.rows_updated, result.rows_deleted) == ("completed", 49, 20)
    assert len(compares) == 1
    assert table_rows(db) == expected_rows(day_two_table)


@pytest.mark.parametrize("finished", ["marked complete", "killed before its finish"])
def test_a_pass_staged_whole_and_replayed_without_its_reject_ratio_override_after_a_newer_date_compares_the_whole_file(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any], finished: str
) -> None:
    # Given 20,000 companies published, and a day two that lacks 3,000 of them (15%, over the
    # 10% delete_ratio) and has every eighth row rejected (over the 5% reject_ratio)
    day_one_table = snowflake_table(20_000, seed=305)
    upload(DAY_ONE, day_one_table)
    run_sync(DAY_ONE)
    day_two_table = with_cells(day_one_table, "CORE_PRODUCT", {row: "x" * 40 for row in range(0, 17_000, 8)}).slice(0, 17_000)
    upload(DAY_TWO, day_two_table)
    # that is staged to its end under a reject_ratio override, then stopped at publish by delete_ratio
    with pytest.raises(GuardTripped, match="delete_ratio"):
        run_sync(DAY_TWO, env={"MISSING_ROWS": "delete"}, override_guards=frozenset({"reject_ratio"}))
    if finished == "killed before its finish":
        # (every chunk committed, the pass not marked complete: what a kill between the last
        # chunk's transaction and the finish's leaves)
        with db.cursor() as cursor:
            cursor.execute("UPDATE upsell_signal_staging_progress SET staging_complete = FALSE WHERE sync_date = %s", (DAY_TWO,))
        db.commit()
    # and a newer date completed since, which rejected 10 of the companies day two lacks
    day_three = DAY_TWO + dt.timedelta(days=1)
    upload(day_three, with_cells(day_one_table, "CORE_PRODUCT", {row: "y" * 40 for row in range(17_000, 17_010)}))
    assert run_sync(day_three, env={"MISSING_ROWS": "delete"}).status == "completed"
    before = table_rows(db)

    # When day two is replayed without the override (its pass was staged whole: it is not staged again)
    with pytest.raises(GuardTripped) as tripped:
        run_sync(DAY_TWO, env={"MISSING_ROWS": "delete"})

    # Then the compare read the whole file, as the pass it goes on with did (a compare that
    # stopped where reject_ratio settled would not tell which companies the file lacks), and
    # the date fails with reject_ratio judged on every row, the table untouched
    assert tripped.value.figures["reject_ratio"]["rows_processed"] == 17_000
    assert tripped.value.figures["reject_ratio"]["rows_rejected"] == 2_125
    assert table_rows(db) == before


def test_an_empty_file_published_by_override_in_delete_mode_deletes_every_company(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]
) -> None:
    # Given 500 companies published, and a next day whose file has no rows
    day_one_table = snowflake_table(500, seed=306)
    upload(DAY_ONE, day_one_table)
    run_sync(DAY_ONE)
    upload(DAY_TWO, day_one_table.slice(0, 0))
    # When a person overrides the guards that stop it, in delete mode
    overrides = frozenset({"empty_file", "delete_ratio", "row_count_drift"})
    result = run_sync(DAY_TWO, env={"MISSING_ROWS": "delete"}, override_guards=overrides)
    # Then it completes (nothing to compare: every company is absent) and deletes every one
    assert (result.status, result.rows_deleted) == ("completed", 500)
    assert table_rows(db) == {}
