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
from tests.lambda_timing import SCALE
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

    history = run(["scripts/status", "--days", "3000"], operator_env)
    detail = run(["scripts/status", "--date", "2026-01-30"], operator_env)

    assert history.returncode == 0 and "2026-01-30  completed  manual" in history.stdout
    assert detail.returncode == 0 and "Rejected rows of the latest staging pass: 0" in detail.stdout


def test_a_bad_event_exits_non_zero_naming_it(operator_env: dict[str, str]) -> None:
    refused = run(["scripts/invoke", "ingest", "-"], operator_env, stdin='{"sync_date": "yesterday"}')

    assert refused.returncode == 1
    assert json.loads(refused.stdout)["error"] == "sync_date must be a date as YYYY-MM-DD, got 'yesterday'"


def test_a_failure_the_function_answers_exits_non_zero_too(operator_env: dict[str, str]) -> None:
    # Given a dead-letter queue, so that the ingest answers a permanent failure instead of raising it
    sqs = boto3.client(
        "sqs", endpoint_url=operator_env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1", aws_access_key_id="e2e", aws_secret_access_key="e2e"
    )
    queue_url = sqs.create_queue(QueueName="e2e-dead-letters")["QueueUrl"]
    env = dict(operator_env, DEAD_LETTER_QUEUE_URL=queue_url, AWS_ENDPOINT_URL_SQS=operator_env["AWS_ENDPOINT_URL_S3"])

    # When a date with no file is replayed
    missing = run(["scripts/invoke", "ingest", "-"], env, stdin='{"sync_date": "2026-01-29"}')

    # Then the answer is printed, failed and dead-lettered, and the exit status says it failed
    answer = json.loads(missing.stdout)
    assert (answer["status"], answer["error_type"]) == ("failed", "MissingObject"), missing.stderr[-2000:]
    assert answer["dead_letter_message_id"]
    assert missing.returncode == 1


def test_status_with_no_database_named_says_what_to_set(operator_env: dict[str, str]) -> None:
    # Given a shell with no database settings, When the operator types ./scripts/status
    bare = {name: value for name, value in operator_env.items() if not name.startswith("DB_")}
    told = run(["scripts/status"], bare)
    # Then it says what to set, in one line, not a traceback
    assert told.returncode == 2
    assert told.stderr.startswith("status: set DB_SECRET_ARN (in AWS) or DB_HOST") and "Traceback" not in told.stderr


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
        ["./scripts/status", "--days", "3000", "--json"], env=plain_shell, capture_output=True, text=True, timeout=120, check=False
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


# -- a file that needs several runs, followed to its end -----------------------------

CONTINUED_ROWS = 150_000


def a_file_needing_several_runs(operator_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The date's file replaced by a larger one, staged in small chunks with a 1 s margin: --timeout 2 leaves 1 s a run."""
    s3 = boto3.client(
        "s3", endpoint_url=operator_env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1", aws_access_key_id="e2e", aws_secret_access_key="e2e"
    )
    s3.upload_file(
        str(write_pyarrow(snowflake_table(CONTINUED_ROWS, seed=5), tmp_path / "large.parquet")),
        BUCKET,
        "passive_upsell_signals/dt=2026-01-30/data.parquet",
    )
    return dict(operator_env, STAGING_CHUNK_ROWS="2000", TIME_BUDGET_MARGIN_SECONDS="1", FIRST_LOAD_ROWS_PER_SECOND="1000", PUBLISH_ROWS_PER_SECOND="1000000")


def test_invoke_follows_a_file_needing_several_runs_to_its_end_telling_each_hand_over(
    operator_env: dict[str, str], tmp_path: Path
) -> None:
    # Given a file that one invocation of the function's timeout cannot sync
    env = a_file_needing_several_runs(operator_env, tmp_path)

    # When the operator invokes the ingest with that timeout, as the deployed durable function runs (pauses scaled)
    synced = run(["scripts/invoke", "--timeout", "2", "--time-scale", str(SCALE), "ingest", "events/manual-replay.json"], env)

    # Then stderr says plainly that the work continues, run after run, and stdout holds the final answer: completed
    assert synced.returncode == 0, synced.stderr[-3000:]
    told = [line for line in synced.stderr.splitlines() if line.startswith("invoke: ")]
    assert any(line.startswith("invoke: run 1 handed over: 2026-01-30: staging at row ") and "run 2 starts after a 5 s pause" in line for line in told), told
    assert any(line.startswith("invoke: run 2 starts") for line in told), told
    assert told[-1].startswith("invoke: durable execution ") and ": SUCCEEDED after " in told[-1], told
    runs = int(told[-1].split(": SUCCEEDED after ")[1].split(" run")[0])
    assert runs >= 2 and sum(line.startswith("invoke: run ") and " handed over: " in line for line in told) == runs - 1, told
    answer = json.loads(synced.stdout)
    assert (answer["status"], answer["rows_processed"], answer["rows_inserted"]) == ("completed", CONTINUED_ROWS, CONTINUED_ROWS)


SLOW_COLD_START = """
import importlib.abc, sys, time

class SlowToLoad(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "functions.ingest.handler":
            time.sleep(2.5)
        return None

sys.meta_path.insert(0, SlowToLoad())
"""


def test_invoke_bills_loading_the_code_to_no_run_as_lambda_bills_no_init(operator_env: dict[str, str], tmp_path: Path) -> None:
    # Given a cold start that takes longer than the function's whole timeout to load its code
    # (a sitecustomize delays importing the ingest's handler by 2.5 s)
    (tmp_path / "slow_start").mkdir()
    (tmp_path / "slow_start" / "sitecustomize.py").write_text(SLOW_COLD_START)
    env = dict(operator_env, PYTHONPATH=str(tmp_path / "slow_start"), TIME_BUDGET_MARGIN_SECONDS="1")

    # When the operator invokes the ingest with a 2 s timeout
    synced = run(["scripts/invoke", "--timeout", "2", "--time-scale", str(SCALE), "ingest", "events/manual-replay.json"], env)

    # Then the first run has its whole timeout, as in Lambda, where init is not billed to the
    # invocation: it syncs the date itself rather than handing over at row 0
    assert synced.returncode == 0, synced.stderr[-3000:]
    told = [line for line in synced.stderr.splitlines() if line.startswith("invoke: ")]
    assert ": SUCCEEDED after 1 run" in told[-1], told
    assert json.loads(synced.stdout)["status"] == "completed"


def test_status_shows_a_date_being_continued_between_two_runs_of_invoke(operator_env: dict[str, str], tmp_path: Path) -> None:
    # Given a file that needs several runs, invoked by the operator, the pause between runs as deployed, stretched (x2)
    env = a_file_needing_several_runs(operator_env, tmp_path)
    invoke = subprocess.Popen(
        [sys.executable, "scripts/invoke", "--timeout", "2", "--time-scale", "2", "ingest", "events/manual-replay.json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert invoke.stderr is not None
        handed_over = next((line for line in invoke.stderr if line.startswith("invoke: run 1 handed over")), None)
        assert handed_over is not None, "the first run never handed over"

        # When the operator reads the date's status during the pause
        status = run(["scripts/status", "--date", "2026-01-30"], env)

        # Then it shows the date handed over by run 1 of its durable execution, with rows read of the file's rows
        assert status.returncode == 0, status.stderr
        [progress] = [line for line in status.stdout.splitlines() if line.startswith("In progress now: ")]
        assert " handed_over, " in progress and f"of {CONTINUED_ROWS:,} rows read" in progress, progress
        assert "run 1 of durable execution " in progress and "run 2 resumes after its pause" in progress, progress
    finally:
        out, err = invoke.communicate(timeout=300)
    # and the invocation still went on to the end
    assert invoke.returncode == 0, err[-3000:]
    assert json.loads(out)["status"] == "completed"
