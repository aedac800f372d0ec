"""The status function answers the report with its own read-only account, as the ingest does, and refuses anything else."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pymysql
import pytest

from functions.ingest import handler as ingest
from functions.ingest.continuation import holder_token_of
from functions.migrate.files import discover_migrations
from functions.migrate.migrator import Migrator
from functions.shared.db import connect
from functions.shared.errors import BadEvent
from functions.shared.settings import DatabaseSettings
from functions.status import handler as status
from functions.status.format import format_status
from tests.factories import snowflake_table, write_pyarrow
from tests.integration.conftest import query
from tests.integration.test_bad_values import with_raw_bytes
from tests.integration.test_handler import (  # noqa: F401 - aws is a fixture
    BUCKET,
    KEY,
    Aws,
    a_day_two_handed_over_by_run_1,
    aws,
    invoke,
    key_for,
    metadata_and_runs,
)
from tests.scripts_support import LocalContext

REPO_ROOT = Path(__file__).resolve().parents[2]


def status_account(migrated_settings: DatabaseSettings) -> DatabaseSettings:
    """`upsell_status`, provisioned with a password as the migrate function does in AWS."""
    password = uuid.uuid4().hex
    admin = connect(migrated_settings)
    Migrator(admin, discover_migrations()).provision_status_user("upsell_status", password)
    admin.close()
    return replace(migrated_settings, user="upsell_status", password=password)


def test_the_status_function_answers_what_the_ingest_answers_with_the_status_account(
    aws: Aws,  # noqa: F811 - the fixture
    db: pymysql.Connection[Any],
    migrated_settings: DatabaseSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given yesterday synced through the ingest, and the status function on the status account's rights only
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    aws.put_file(f"passive_upsell_signals/dt={yesterday}/data.parquet")
    assert invoke({"sync_date": yesterday.isoformat()})["status"] == "completed"
    from_ingest = invoke({"action": "status", "days": 3})
    before = metadata_and_runs(db)
    account = status_account(migrated_settings)
    monkeypatch.setenv("DB_USER", account.user)
    monkeypatch.setenv("DB_PASSWORD", account.password)

    # When an operator asks the status function, for the history and for the date
    history = status.handler({"action": "status", "days": 3}, LocalContext("status"))
    one_date = status.handler({"action": "status", "sync_date": yesterday.isoformat()}, LocalContext("status"))

    # Then the history is the ingest's answer, the date's run is listed, and nothing was written
    assert history == from_ingest
    assert [run["status"] for run in one_date["runs"]] == ["completed"]
    assert metadata_and_runs(db) == before


def test_the_status_account_reads_the_ledger_and_can_change_nothing(migrated_settings: DatabaseSettings) -> None:
    # Given the status account, provisioned
    limited = connect(status_account(migrated_settings))
    try:
        # When it reads the report's tables, then tries anything else
        # Then it reads them, and every write, every other table and every schema change is refused
        for table in ("upsell_signal_sync_metadata", "upsell_signal_sync_runs", "upsell_signal_rejected_rows", "upsell_signal_staging_progress"):
            with limited.cursor() as cursor:
                cursor.execute(f"SELECT COUNT(*) FROM {table}")
                assert isinstance(cursor.fetchone()[0], int), table  # read, not refused
        for statement in (
            "SELECT COUNT(*) FROM company_upsell_signals",
            "SELECT COUNT(*) FROM upsell_signal_staging",
            "INSERT INTO upsell_signal_sync_runs (sync_date) VALUES ('2026-01-30')",
            "UPDATE upsell_signal_sync_metadata SET s3_etag = 'x'",
            "DELETE FROM upsell_signal_rejected_rows",
            "DELETE FROM upsell_signal_staging_progress",
            "DELETE FROM company_upsell_signals",
            "TRUNCATE TABLE upsell_signal_sync_runs",
            "DROP TABLE upsell_signal_sync_metadata",
            "ALTER TABLE upsell_signal_sync_runs ADD COLUMN x INT",
            "CREATE TEMPORARY TABLE scratch (x INT)",
            "DELETE FROM schema_migrations",
        ):
            with pytest.raises(pymysql.err.OperationalError) as refused, limited.cursor() as cursor:
                cursor.execute(statement)
            assert refused.value.args[0] in (1142, 1044), statement
    finally:
        limited.close()


def test_the_status_function_refuses_a_sync_event(migrated_settings: DatabaseSettings) -> None:
    # Given the status function
    # When it is sent a replay payload by mistake
    # Then it refuses, naming what it answers, and syncs nothing
    with pytest.raises(BadEvent, match=re.escape('answers {"action": "status", ...} only')):
        status.handler({"sync_date": "2026-01-30", "force_resync": True}, LocalContext("status"))


def test_scripts_invoke_runs_the_status_function_like_a_user(migrated_settings: DatabaseSettings) -> None:
    # Given an empty, migrated database
    # When a user runs ./scripts/invoke status with a status request on stdin
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "invoke"), "status", "-"],
        input=json.dumps({"action": "status", "days": 2}),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    # Then it prints the (empty) report as JSON and exits 0
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == {"action": "status", "days": 2, "syncs": [], "syncs_cut_to_fit": False}


# Lambda returns at most 6 MB to a synchronous invoke ("6 MB each for request and response", Lambda quotas).
LAMBDA_SYNC_RESPONSE_BYTES = 6 * 1024 * 1024


def test_a_status_request_for_the_most_rejects_it_allows_fits_in_a_lambda_response(
    aws: Aws,  # noqa: F811 - the fixture
    db: pymysql.Connection[Any],
) -> None:
    # Given a file of 1,000 rows whose four text columns hold 2,000 bytes that are not UTF-8 each:
    # every row rejected, each original value kept (cut at 1 KiB), the date failed by the reject guard
    table = snowflake_table(1_000, seed=3)
    not_utf8 = {row: bytes([0xFF]) * 2_000 for row in range(1_000)}
    for name in ("COMPANY_ID", "CORE_PRODUCT", "DEBUT_PRODUCT_TIER", "CURRENT_PRODUCT_TIER"):
        table = with_raw_bytes(table, name, not_utf8)
    aws.s3.upload_file(str(write_pyarrow(table, aws.tmp_path / "bad.parquet")), BUCKET, KEY)
    assert invoke({"sync_date": "2026-01-30"})["error_type"] == "GuardTripped"

    # When the operator asks for as many of its rejected rows as a request may (1,000)
    answer = invoke({"action": "status", "sync_date": "2026-01-30", "rejects": 1_000})

    # Then the answer fits what Lambda returns to `scripts/status --function`, says how many there
    # are in all, lists the first ones in row order, and the report says it cut the list to fit
    size = len(json.dumps(answer))
    assert size <= LAMBDA_SYNC_RESPONSE_BYTES - 256 * 1024, f"{size:,} bytes"
    assert answer["rejects_total"] == 1_000
    assert 0 < len(answer["rejects"]) < 1_000
    assert [reject["source_row"] for reject in answer["rejects"]] == list(range(len(answer["rejects"])))
    assert f"first {len(answer['rejects'])}, as many as fit in one answer" in format_status(answer)


def test_the_rejects_shown_are_the_latest_passes_even_when_it_rejected_none_and_failed(
    aws: Aws,  # noqa: F811 - the fixture
    db: pymysql.Connection[Any],
) -> None:
    # Given 2026-01-29 published with 300 companies, and 2026-01-30 published from a file with a key repeated (2 rejects)
    aws.put_file(key_for(29), rows=300, seed=5)
    assert invoke({"sync_date": "2026-01-29"})["status"] == "completed"
    table = snowflake_table(300, seed=4)
    with_a_key_twice = pa.concat_tables([table, table.slice(0, 1)])
    aws.s3.upload_file(str(write_pyarrow(with_a_key_twice, aws.tmp_path / "dup.parquet")), BUCKET, KEY)
    assert invoke({"sync_date": "2026-01-30"})["rows_rejected"] == 2
    # And a re-export of 2026-01-30 that rejects no row but trips row_count_drift (100 rows against 300)
    aws.s3.upload_file(str(write_pyarrow(table.slice(0, 100), aws.tmp_path / "short.parquet")), BUCKET, KEY)
    failed = invoke({"sync_date": "2026-01-30"})
    assert failed["error_type"] == "GuardTripped" and "row_count_drift" in failed["reason"], failed

    # When the operator asks for the date
    answer = invoke({"action": "status", "sync_date": "2026-01-30"})

    # Then the latest pass, which staged the re-export and rejected nothing, is not shown the earlier file's rejects
    assert (answer["rejects_total"], answer["rejects"]) == (0, [])
    assert query(db, "SELECT COUNT(*) AS n FROM upsell_signal_rejected_rows")[0]["n"] == 2


def test_a_date_nothing_was_recorded_for_says_so(aws: Aws, db: pymysql.Connection[Any]) -> None:  # noqa: F811
    # Given a date no event ever reached (a dropped or refused event: the NoCompletedSync alarm's case)
    # When the operator asks for it, as the runbook says to
    shown = format_status(invoke({"action": "status", "sync_date": "2026-01-30"}))

    # Then the answer says nothing was recorded for it, and where to look
    assert "Nothing is recorded for 2026-01-30" in shown, shown
    assert "dead-letter queue" in shown


def test_a_date_its_durable_execution_gave_up_on_reads_failed_with_the_reason_in_its_detail(
    aws: Aws,  # noqa: F811 - the fixture
    db: pymysql.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given 2026-01-30 handed over by run 1 of its durable execution, which then gave up for no
    # progress (continuation.py: the date recorded failed with the reason, its event dead-lettered)
    execution = a_day_two_handed_over_by_run_1(aws, db, monkeypatch, day=30)
    reason = "no progress: run 2 handed over row 100, where run 1 did"
    assert ingest.fail_dates_held_by(holder_token_of(execution), reason) == 1

    # When the operator reads the date's detail, as the runbook's "A failed date" says
    report = invoke({"action": "status", "sync_date": "2026-01-30"})
    shown = format_status(report)

    # Then it says first that the date failed, and why, above its runs (all handed over)
    assert report["date"]["status"] == "failed" and report["date"]["error_message"] == reason
    assert shown.splitlines()[2] == f"2026-01-30: failed (attempt 1): {reason}", shown


def test_scripts_status_refuses_a_count_out_of_bounds_by_name_as_the_function_does(migrated_settings: DatabaseSettings) -> None:
    # Given a migrated database; When an operator mistypes a count
    for flag, value in (("--rejects", "-1"), ("--days", "0")):
        completed = subprocess.run(
            [sys.executable, str(REPO_ROOT / "scripts" / "status"), "--date", "2026-01-30", flag, value],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        # Then it says what is wrong, as the function would, and exits 2 without a traceback
        assert completed.returncode == 2, completed.stderr[-600:]
        assert "Traceback" not in completed.stderr
        assert f"{flag[2:]} must be a whole number from" in completed.stderr


def test_a_history_of_the_most_days_a_request_allows_fits_in_a_lambda_response_newest_first(
    aws: Aws,  # noqa: F811 - the fixture
    db: pymysql.Connection[Any],
) -> None:
    # Given ten years of dates, each failed with a reason of 2,000 characters (a schema error's list of columns)
    today = dt.datetime.now(dt.UTC).date()
    with db.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO upsell_signal_sync_metadata (sync_date, s3_key, workflow_id, status, trigger_source, error_message) "
            "VALUES (%s, 'k', 'w', 'failed', 's3', %s)",
            [(today - dt.timedelta(days=day), f"SchemaError: {day} " + "x" * 2_000) for day in range(1, 3_661)],
        )
    db.commit()

    # When the operator asks for as many days as a request may (3,660)
    answer = invoke({"action": "status", "days": 3_660})

    # Then the answer fits what Lambda returns, holds the newest dates in order, and says it left the oldest out
    size = len(json.dumps(answer))
    assert size <= LAMBDA_SYNC_RESPONSE_BYTES - 256 * 1024, f"{size:,} bytes"
    listed = [sync["sync_date"] for sync in answer["syncs"]]
    assert 0 < len(listed) < 3_660 and answer["syncs_cut_to_fit"]
    assert listed == [(today - dt.timedelta(days=day)).isoformat() for day in range(1, len(listed) + 1)]
    assert f"(the {len(listed)} newest dates, as many as fit in one answer" in format_status(answer)
