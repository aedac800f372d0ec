"""Through ./scripts/invoke and ./scripts/status, as an operator would, against moto S3 on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from functions.shared.settings import DatabaseSettings
from tests.factories import snowflake_table, write_pyarrow
from tests.stand_ins import moto_server

REPO_ROOT = Path(__file__).resolve().parents[2]
BUCKET = "e2e-signals"


@pytest.fixture
def operator_env(migrated_settings: DatabaseSettings, tmp_path: Path) -> Iterator[dict[str, str]]:
    with moto_server() as endpoint:
        yield from _operator_env(endpoint, migrated_settings, tmp_path)


def _operator_env(endpoint: str, migrated_settings: DatabaseSettings, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = dict(
        os.environ,
        AWS_ENDPOINT_URL_S3=endpoint,
        AWS_ACCESS_KEY_ID="e2e",
        AWS_SECRET_ACCESS_KEY="e2e",
        AWS_DEFAULT_REGION="us-east-1",
        SIGNALS_BUCKET=BUCKET,
        WORK_DIR=str(tmp_path),
        DB_NAME=migrated_settings.name,
    )
    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        region_name="us-east-1",
        aws_access_key_id="e2e",
        aws_secret_access_key="e2e",
    )
    s3.create_bucket(Bucket=BUCKET)
    s3.upload_file(
        str(write_pyarrow(snowflake_table(1_000, seed=3), tmp_path / "day.parquet")),
        BUCKET,
        "passive_upsell_signals/dt=2026-01-30/data.parquet",
    )
    yield env


def run(command: list[str], env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *command], input=stdin, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_replay_a_date_then_read_the_status(operator_env: dict[str, str]) -> None:
    synced = run(["scripts/invoke", "ingest", "events/manual-replay.json"], operator_env)
    assert synced.returncode == 0, synced.stderr
    answer = json.loads(synced.stdout)
    assert (answer["status"], answer["rows_inserted"]) == ("completed", 1_000)

    history = run(["scripts/status", "--days", "100000"], operator_env)
    detail = run(["scripts/status", "--date", "2026-01-30"], operator_env)

    assert history.returncode == 0 and "2026-01-30  completed  manual" in history.stdout
    assert detail.returncode == 0 and "Rejected rows of the latest staging pass: 0" in detail.stdout


def test_a_bad_event_exits_non_zero_naming_it(operator_env: dict[str, str]) -> None:
    refused = run(["scripts/invoke", "ingest", "-"], operator_env, stdin='{"sync_date": "yesterday"}')

    assert refused.returncode == 1
    assert json.loads(refused.stdout)["error"] == "sync_date must be a date as YYYY-MM-DD, got 'yesterday'"


def test_migrate_status_through_invoke(operator_env: dict[str, str]) -> None:
    status = run(["scripts/invoke", "migrate", "-"], operator_env, stdin='{"action": "status"}')

    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["pending"] == []


def test_status_typed_as_the_readme_shows_runs_with_the_project_venv_and_matches_the_functions_answer(
    operator_env: dict[str, str],
) -> None:
    # Given a date synced, and a shell whose python3 is the system's (no venv on PATH)
    assert run(["scripts/invoke", "ingest", "events/manual-replay.json"], operator_env).returncode == 0
    plain_shell = dict(operator_env, PATH="/usr/local/bin:/usr/bin:/bin")

    # When the operator types ./scripts/status, and asks the function through ./scripts/invoke
    typed = subprocess.run(
        ["./scripts/status", "--days", "100000", "--json"], env=plain_shell, capture_output=True, text=True, timeout=120, check=False
    )
    asked = subprocess.run(
        ["./scripts/invoke", "ingest", "-"],
        input='{"action": "status", "days": 3000}',
        env=plain_shell,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # Then both run (the scripts found .venv themselves) and report the same date the same way
    assert typed.returncode == 0, typed.stderr
    assert asked.returncode == 0, asked.stderr
    from_database, from_function = json.loads(typed.stdout)["syncs"], json.loads(asked.stdout)["syncs"]
    assert [s["sync_date"] for s in from_database] == ["2026-01-30"]
    assert from_function == from_database
