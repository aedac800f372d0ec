"""A backfill needs no one: dates arriving at once, in any order, end as if they had come in date order."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pymysql
import pytest

from functions.ingest.sync_values import SyncAnswer, SyncOptions
from functions.shared.settings import DatabaseSettings
from tests.factories import snowflake_table, write_pyarrow
from tests.integration.conftest import (
    Outcome,
    expected_rows,
    in_a_thread,
    query,
    service_on,
    table_rows,
    upload_to,
    work_dir_for,
)

FIRST_DATE = dt.date(2026, 3, 1)
DATES = 10
ROWS = 1_000
SHIFT = 60  # each date's companies start this many ids after the day before's: some come, some go
# Ten dates in any order delete and drift far more than one day would: the ordering is under test here.
OPEN_GUARDS = {"GUARD_MAX_DELETE_RATIO": "1", "GUARD_MAX_ROW_COUNT_DRIFT": "1"}


def date_files() -> dict[dt.date, pa.Table]:
    """Ten daily files, each overlapping the day before's companies with values of its own."""
    return {
        FIRST_DATE + dt.timedelta(days=day): snowflake_table(ROWS, seed=700 + day, first_id=1 + day * SHIFT)
        for day in range(DATES)
    }


def in_date_order(files: dict[dt.date, pa.Table], *, delete: bool) -> dict[str, dict[str, Any]]:
    """The table after the dates arrived one by one in date order, computed from the files alone."""
    table: dict[str, dict[str, Any]] = {}
    for sync_date in sorted(files):
        rows = expected_rows(files[sync_date])
        table = dict(rows) if delete else {**table, **rows}
    return table


@pytest.mark.parametrize("missing_rows", ["keep", "delete"])
def test_ten_dates_at_once_in_random_order_with_duplicates_end_as_in_date_order(
    missing_rows: str,
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
) -> None:
    # Given ten dates' files in S3, and their events delivered at once in a random order, a
    # third of them twice (as Lambda may), four at a time
    files = date_files()
    for sync_date, table in files.items():
        upload_to(moto_endpoint, sync_date, write_pyarrow(table, tmp_path / f"{sync_date}.parquet"))
    rng = random.Random(missing_rows)
    deliveries = [*files, *rng.sample(sorted(files), DATES // 3)]
    rng.shuffle(deliveries)
    outcomes: dict[str, Outcome] = {}

    # When each delivery runs its sync, as its own execution
    for start in range(0, len(deliveries), 4):
        threads = []
        for number, sync_date in enumerate(deliveries[start : start + 4], start=start):
            name = f"{number}:{sync_date}"
            service = service_on(moto_endpoint, migrated_settings, work_dir_for(tmp_path, name), MISSING_ROWS=missing_rows, **OPEN_GUARDS)
            options = SyncOptions(invocation_id=name, trigger="eventbridge_s3")
            threads.append(in_a_thread(outcomes, name, lambda s=service, d=sync_date, o=options: s.sync(d, None, o)))
        for thread in threads:
            thread.join(timeout=300)

    # Then no delivery failed, and every date completed
    failures = {name: outcome for name, outcome in outcomes.items() if not isinstance(outcome, SyncAnswer)}
    assert failures == {}
    answers = [outcome for outcome in outcomes.values() if isinstance(outcome, SyncAnswer)]
    assert {answer.status for answer in answers} <= {"completed", "skipped", "in_progress"}
    ledger = query(db, "SELECT sync_date, status FROM upsell_signal_sync_metadata ORDER BY sync_date")
    assert [(row["sync_date"], row["status"]) for row in ledger] == [(sync_date, "completed") for sync_date in sorted(files)]
    # And the table is exactly what the dates in date order would have left
    assert table_rows(db) == in_date_order(files, delete=missing_rows == "delete")
    # And some date was indeed published after a newer one, leaving it the companies it carries
    assert any((answer.rows_superseded or 0) > 0 for answer in answers), [answer.as_dict() for answer in answers]


def test_an_older_date_after_a_newer_one_is_recorded_and_answered_for_what_it_did(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given the second of two dates published first
    files = date_files()
    older, newer = sorted(files)[:2]
    for sync_date in (older, newer):
        upload_to(moto_endpoint, sync_date, write_pyarrow(files[sync_date], tmp_path / f"{sync_date}.parquet"))
    service = service_on(moto_endpoint, migrated_settings, tmp_path, **OPEN_GUARDS)
    service.sync(newer, None, SyncOptions(invocation_id="newer", trigger="eventbridge_s3"))

    # When the older date's event arrives
    result = service.sync(older, None, SyncOptions(invocation_id="older", trigger="eventbridge_s3"))

    # Then it completes, inserting only the companies the newer file lacks and leaving the rest to it
    only_older = ROWS - (ROWS - SHIFT)
    assert (result.status, result.rows_inserted, result.rows_updated) == ("completed", only_older, 0)
    assert (result.rows_superseded, result.rows_unchanged) == (ROWS - SHIFT, 0)
    assert table_rows(db) == in_date_order({older: files[older], newer: files[newer]}, delete=False)
    # And the ledger and the run history record those counts
    [metadata] = query(db, "SELECT status, rows_inserted, rows_superseded FROM upsell_signal_sync_metadata WHERE sync_date = %s", (older,))
    assert metadata == {"status": "completed", "rows_inserted": only_older, "rows_superseded": ROWS - SHIFT}
    [run] = query(db, "SELECT status, rows_superseded FROM upsell_signal_sync_runs WHERE sync_date = %s", (older,))
    assert run == {"status": "completed", "rows_superseded": ROWS - SHIFT}
