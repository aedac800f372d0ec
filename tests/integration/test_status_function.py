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

import pymysql
import pytest

from functions.migrate.files import discover_migrations
from functions.migrate.migrator import Migrator
from functions.shared.db import connect
from functions.shared.errors import BadEvent
from functions.shared.settings import DatabaseSettings
from functions.status import handler as status
from tests.integration.test_handler import Aws, aws, invoke, metadata_and_runs  # noqa: F401 - aws is a fixture
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
    assert json.loads(completed.stdout) == {"action": "status", "days": 2, "syncs": []}
