"""The status function answers the report with the ingest account's rights, as the ingest does, and refuses anything else."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pymysql
import pytest

from functions.migrate.migrator import Migrator, discover_migrations
from functions.shared.db import connect
from functions.shared.errors import BadEvent
from functions.shared.settings import DatabaseSettings
from functions.status import handler as status
from tests.integration.test_handler import Aws, aws, invoke, metadata_and_runs  # noqa: F401 - aws is a fixture
from tests.scripts_support import LocalContext

REPO_ROOT = Path(__file__).resolve().parents[2]


def as_ingest_account(migrated_settings: DatabaseSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point DB_USER/DB_PASSWORD at `upsell_ingest`, provisioned as the migrate function does in AWS."""
    password = uuid.uuid4().hex
    admin = connect(migrated_settings)
    Migrator(admin, discover_migrations()).provision_ingest_user("upsell_ingest", password)
    admin.close()
    monkeypatch.setenv("DB_USER", "upsell_ingest")
    monkeypatch.setenv("DB_PASSWORD", password)


def test_the_status_function_answers_what_the_ingest_answers_with_the_ingest_account(
    aws: Aws,  # noqa: F811 - the fixture
    db: pymysql.Connection[Any],
    migrated_settings: DatabaseSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given yesterday synced through the ingest, and the status function on the ingest account's rights only
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    aws.put_file(f"passive_upsell_signals/dt={yesterday}/data.parquet")
    assert invoke({"sync_date": yesterday.isoformat()})["status"] == "completed"
    from_ingest = invoke({"action": "status", "days": 3})
    before = metadata_and_runs(db)
    as_ingest_account(migrated_settings, monkeypatch)

    # When an operator asks the status function, for the history and for the date
    history = status.handler({"action": "status", "days": 3}, LocalContext("status"))
    one_date = status.handler({"action": "status", "sync_date": yesterday.isoformat()}, LocalContext("status"))

    # Then the history is the ingest's answer, the date's run is listed, and nothing was written
    assert history == from_ingest
    assert [run["status"] for run in one_date["runs"]] == ["completed"]
    assert metadata_and_runs(db) == before


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
