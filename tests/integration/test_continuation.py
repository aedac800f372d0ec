"""A file that needs several runs continues in one Lambda durable execution, run through the engine's own testing SDK.

The durable handler is `Continuation` around the plain handler, as deployed (functions/ingest/continuation.py);
the testing SDK (aws-durable-execution-sdk-python-testing) plays the service: checkpoints, replays, waits.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pymysql
import pytest
from aws_durable_execution_sdk_python import durable_execution
from aws_durable_execution_sdk_python.execution import InvocationStatus
from aws_durable_execution_sdk_python_testing.runner import DurableFunctionTestRunner
from moto import mock_aws

from functions.ingest import claims, continuation
from functions.ingest import handler as ingest
from functions.ingest.continuation import Continuation, holder_token_of
from functions.ingest.sync_values import DurableRun
from functions.shared.settings import DatabaseSettings
from functions.status.format import format_status
from tests.factories import day_two, snowflake_table, write_pyarrow
from tests.integration.conftest import expected_rows, query, table_rows
from tests.scripts_support import LocalContext
from tests.stand_ins import slow_link

BUCKET = "signals-bucket"
KEY = "passive_upsell_signals/dt=2026-01-30/data.parquet"
CALIBRATION_KEY = "passive_upsell_signals/dt=2026-01-29/data.parquet"
FIRST_KEY = "passive_upsell_signals/dt=2026-01-28/data.parquet"
MARGIN_SECONDS = 1
LATENCY_SECONDS = 0.02


@pytest.fixture
def s3(migrated_settings: DatabaseSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto S3 with the bucket; small chunks, a 1 s margin, no dead-letter queue (the test records dead letters).

    The functions reach the database over a link with 20 ms of latency a request: a network
    farther than loopback, where committing a chunk takes its round trips, so staging is most
    of a sync's work and a file can need several runs (on loopback the compare and the
    publish, which a run cannot split, would be).
    """
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert migrated_settings.host is not None
    with mock_aws(), slow_link(migrated_settings.host, migrated_settings.port, latency_seconds=LATENCY_SECONDS) as link:
        client = boto3.client("s3", region_name="eu-west-1")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        for name, value in {
            "SIGNALS_BUCKET": BUCKET,
            "DB_HOST": "127.0.0.1",
            "DB_PORT": str(link.port),
            "WORK_DIR": str(tmp_path),
            "STAGING_CHUNK_ROWS": "2000",
            "TIME_BUDGET_MARGIN_SECONDS": str(MARGIN_SECONDS),
            "FIRST_LOAD_ROWS_PER_SECOND": "1000",  # staged, not loaded in one go
            "PUBLISH_ROWS_PER_SECOND": "1000000",
        }.items():
            monkeypatch.setenv(name, value)
        ingest.build_app.cache_clear()
        yield client
        ingest.build_app.cache_clear()


def a_day_two_and_a_timeout_of(s3: Any, tmp_path: Path, share: float) -> tuple[Any, Any, float]:
    """Day one published, a calibration day two synced (timed), the day two under test uploaded: (first, file, timeout)."""
    first_table = snowflake_table(120_000, seed=399)
    calibration_table = day_two(first_table, seed=400)
    file_table = day_two(first_table, seed=401)
    for table, key in ((first_table, FIRST_KEY), (calibration_table, CALIBRATION_KEY), (file_table, KEY)):
        s3.upload_file(str(write_pyarrow(table, tmp_path / f"{key.split('/')[1]}.parquet")), BUCKET, key)
    ingest.handler({"sync_date": "2026-01-28"}, LocalContext("ingest"))
    started = time.monotonic()
    ingest.handler({"sync_date": "2026-01-29"}, LocalContext("ingest"))
    whole_sync_seconds = time.monotonic() - started
    return (first_table, calibration_table), file_table, MARGIN_SECONDS + whole_sync_seconds * share


# Generous: a run's share of the work is calibrated on a loaded machine, and the bound is not what these tests show.
MAX_RUNS = 300


def durable(timeout_seconds: float, dead_letters: list[str], max_runs: int = MAX_RUNS) -> Any:
    """The deployed shape (the plain handler inside Continuation), each run given `timeout_seconds` as its Lambda timeout."""
    continuation = Continuation(
        run_event=ingest.handler,
        dead_letter=lambda event, error: dead_letters.append(str(error)) or "dead-letter-id",
        max_runs=max_runs,
        pause_seconds=1,
        run_context=lambda context: LocalContext("ingest", timeout_seconds=timeout_seconds, aws_request_id="the-one-request"),
    )
    return durable_execution(continuation)


def test_a_file_needing_five_timeouts_completes_in_one_execution_with_no_error_and_no_dead_letter(
    s3: Any, db: pymysql.Connection[Any], tmp_path: Path
) -> None:
    # Given a 120,000-row day two and a function timeout of about a fifth of what its whole sync takes here
    earlier, file_table, timeout_seconds = a_day_two_and_a_timeout_of(s3, tmp_path, 1 / 5)
    dead_letters: list[str] = []
    # When the file's arrival starts one durable execution, as the alias is invoked
    with DurableFunctionTestRunner(handler=durable(timeout_seconds, dead_letters)) as runner:
        result = runner.run(input=json.dumps({"sync_date": "2026-01-30"}), execution_timeout=900, execution_name="2026-01-30")
    # Then the execution succeeded (no failed invocation, no failed execution), through several runs with a pause between
    assert result.status is InvocationStatus.SUCCEEDED, result.error
    answer = json.loads(result.result or "null")
    assert answer["status"] == "completed" and answer["rows_processed"] == file_table.num_rows
    runs = [operation.name for operation in result.operations if (operation.name or "").startswith("run ")]
    pauses = [operation.name for operation in result.operations if (operation.name or "").startswith("pause ")]
    assert len(runs) >= 4 and len(pauses) == len(runs) - 1, runs
    # and no dead letter; the table holds the file exactly; the ledger shows each hand-over, then the completion
    assert dead_letters == []
    assert table_rows(db) == {**expected_rows(earlier[0]), **expected_rows(earlier[1]), **expected_rows(file_table)}
    recorded = query(db, "SELECT status FROM upsell_signal_sync_runs WHERE sync_date = '2026-01-30' ORDER BY id")
    assert [run["status"] for run in recorded] == ["handed_over"] * (len(runs) - 1) + ["completed"]


def test_an_execution_stopped_at_its_bound_records_the_date_failed_not_handed_over(
    s3: Any, db: pymysql.Connection[Any], tmp_path: Path
) -> None:
    # Given a day two that needs more runs than the bound allows (two, here)
    earlier, _file_table, timeout_seconds = a_day_two_and_a_timeout_of(s3, tmp_path, 1 / 5)
    dead_letters: list[str] = []

    # When its durable execution reaches the bound
    with DurableFunctionTestRunner(handler=durable(timeout_seconds, dead_letters, max_runs=2)) as runner:
        result = runner.run(input=json.dumps({"sync_date": "2026-01-30"}), execution_timeout=900, execution_name="bound")

    # Then the event is dead-lettered once with the reason, and the ledger says the date failed
    # with it, so neither the ledger nor the status request says a next run is coming
    answer = json.loads(result.result or "null")
    assert (answer["status"], answer["error_type"]) == ("failed", "NoProgress"), answer
    assert len(dead_letters) == 1 and "CONTINUATION_MAX_RUNS" in dead_letters[0]
    [ledger] = query(db, "SELECT status, error_message, lease_expires_at FROM upsell_signal_sync_metadata WHERE sync_date = '2026-01-30'")
    assert ledger["status"] == "failed" and "CONTINUATION_MAX_RUNS" in ledger["error_message"], ledger
    assert ledger["lease_expires_at"] is None
    status = ingest.handler({"action": "status", "sync_date": "2026-01-30"}, LocalContext("ingest"))
    assert status.get("progress") is None, status.get("progress")
    # And the table still holds what it held before: nothing half-published
    assert table_rows(db) == {**expected_rows(earlier[0]), **expected_rows(earlier[1])}


def clock_crossing_midnight(monkeypatch: pytest.MonkeyPatch, reads_before: int) -> None:
    """The ingest's clock (both modules) reads 2026-01-31 23:59:5x UTC `reads_before` times, then 2026-02-01."""
    reads: list[int] = []

    class Clock(dt.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:  # type: ignore[override]
            reads.append(1)
            if len(reads) <= reads_before:
                return dt.datetime(2026, 1, 31, 23, 59, 50 + len(reads), tzinfo=dt.UTC)
            return dt.datetime(2026, 2, 1, 0, 0, 10, tzinfo=dt.UTC)

    clock = types.SimpleNamespace(datetime=Clock, UTC=dt.UTC, date=dt.date, timedelta=dt.timedelta)
    monkeypatch.setattr(continuation, "dt", clock)
    monkeypatch.setattr(ingest, "dt", clock)


# A replay of yesterday that names no date: as an operator sends it, and nested in a redriven dead letter
# (the function's own message, as written before the durable function wrote the date in). The clock reads
# 2026-01-31 23:59:5x for the execution's `today` step (and, redriven, its first run too), then 2026-02-01.
REPLAYS_OF_YESTERDAY = {
    "as sent": ({"force_resync": True}, 1),
    "redriven": ({"original_event": {"force_resync": True}, "error_type": "TransientError", "error_message": "database away"}, 2),
}


@pytest.mark.parametrize("shape", REPLAYS_OF_YESTERDAY)
def test_a_replay_of_yesterday_continued_past_midnight_finishes_the_date_it_started(
    shape: str, s3: Any, db: pymysql.Connection[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a day two that needs several runs, and a file for the day after it too
    earlier, file_table, timeout_seconds = a_day_two_and_a_timeout_of(s3, tmp_path, 1 / 4)
    next_key = "passive_upsell_signals/dt=2026-01-31/data.parquet"
    s3.upload_file(str(write_pyarrow(day_two(file_table, seed=402), tmp_path / "next.parquet")), BUCKET, next_key)
    body, reads_before_midnight = REPLAYS_OF_YESTERDAY[shape]

    # And a clock that crosses midnight after the execution began
    clock_crossing_midnight(monkeypatch, reads_before=reads_before_midnight)
    dead_letters: list[str] = []

    # When the replay starts just before midnight and is continued after it
    with DurableFunctionTestRunner(handler=durable(timeout_seconds, dead_letters)) as runner:
        result = runner.run(input=json.dumps(body), execution_timeout=900, execution_name="midnight")

    # Then every run synced 2026-01-30, the date the execution started on, to its end
    answer = json.loads(result.result or "null")
    runs = [operation.name for operation in result.operations if (operation.name or "").startswith("run ")]
    assert len(runs) >= 2, runs
    assert (answer["status"], answer["sync_date"]) == ("completed", "2026-01-30"), answer
    ledger = query(db, "SELECT sync_date, status FROM upsell_signal_sync_metadata WHERE sync_date >= '2026-01-30'")
    assert [(str(row["sync_date"]), row["status"]) for row in ledger] == [("2026-01-30", "completed")]
    assert table_rows(db) == {**expected_rows(earlier[0]), **expected_rows(earlier[1]), **expected_rows(file_table)}


def test_a_duplicated_start_of_a_finished_execution_syncs_nothing_again(s3: Any, db: pymysql.Connection[Any], tmp_path: Path) -> None:
    # Given a file synced through one durable execution named for its date
    earlier, file_table, timeout_seconds = a_day_two_and_a_timeout_of(s3, tmp_path, 1 / 2)
    dead_letters: list[str] = []
    event = json.dumps({"sync_date": "2026-01-30"})
    with DurableFunctionTestRunner(handler=durable(timeout_seconds, dead_letters)) as runner:
        first = runner.run(input=event, execution_timeout=900, execution_name="2026-01-30")
        # When the same start arrives again (EventBridge delivers at least once). Lambda itself answers a repeated
        # execution name with the existing execution; the testing SDK does not model that, so the second start
        # runs here, and the claim ledger is what must make it a no-op.
        second = runner.run(input=event, execution_timeout=900, execution_name="2026-01-30")
    # Then the work ran once: the second answers skipped, writes nothing, dead-letters nothing
    assert json.loads(first.result or "null")["status"] == "completed"
    assert second.status is InvocationStatus.SUCCEEDED
    assert json.loads(second.result or "null")["status"] == "skipped"
    assert dead_letters == []
    assert table_rows(db) == {**expected_rows(earlier[0]), **expected_rows(earlier[1]), **expected_rows(file_table)}
    completed = query(db, "SELECT COUNT(*) AS n FROM upsell_signal_sync_runs WHERE sync_date = '2026-01-30' AND status = 'completed'")
    assert completed[0]["n"] == 1


def test_a_correction_landing_between_two_continuations_wins(s3: Any, db: pymysql.Connection[Any], tmp_path: Path) -> None:
    # Given a day two that needs several runs, and a corrected re-export of the same date (other values: another
    # ETag) that lands after the first run handed over and before the second
    earlier, _, timeout_seconds = a_day_two_and_a_timeout_of(s3, tmp_path, 1 / 3)
    correction = day_two(earlier[0], seed=402)
    first_etag = s3.head_object(Bucket=BUCKET, Key=KEY)["ETag"]
    dead_letters: list[str] = []
    runs_started = 0

    def run_event(event: Any, context: Any, durable_run: DurableRun | None = None) -> dict[str, Any]:
        nonlocal runs_started
        runs_started += 1
        if runs_started == 2:
            s3.upload_file(str(write_pyarrow(correction, tmp_path / "correction.parquet")), BUCKET, KEY)
        return ingest.handler(event, context, durable_run)

    continuation = Continuation(
        run_event=run_event,
        dead_letter=lambda event, error: dead_letters.append(str(error)) or "dead-letter-id",
        max_runs=MAX_RUNS,
        pause_seconds=1,
        run_context=lambda context: LocalContext("ingest", timeout_seconds=timeout_seconds, aws_request_id="the-one-request"),
    )
    # When the file's arrival starts one durable execution
    with DurableFunctionTestRunner(handler=durable_execution(continuation)) as runner:
        result = runner.run(input=json.dumps({"sync_date": "2026-01-30"}), execution_timeout=900, execution_name="2026-01-30")

    # Then the execution completed the corrected file, not the one it started on: the table equals the correction
    assert result.status is InvocationStatus.SUCCEEDED, result.error
    assert json.loads(result.result or "null")["status"] == "completed"
    assert runs_started >= 2
    assert dead_letters == []
    assert table_rows(db) == {**expected_rows(earlier[0]), **expected_rows(earlier[1]), **expected_rows(correction)}
    [ledger] = query(db, "SELECT status, completed_etag FROM upsell_signal_sync_metadata WHERE sync_date = '2026-01-30'")
    corrected_etag = s3.head_object(Bucket=BUCKET, Key=KEY)["ETag"]
    assert corrected_etag != first_etag
    assert (ledger["status"], ledger["completed_etag"].strip('"')) == ("completed", corrected_etag.strip('"'))


def test_a_kill_between_continuations_resumes_from_the_checkpoint_and_completes_exactly(
    s3: Any, db: pymysql.Connection[Any], tmp_path: Path
) -> None:
    # Given a day two that needs several runs, and the invocation that would run the second one dying before it
    # does anything (its process killed between two continuations: no answer, no checkpoint)
    earlier, file_table, timeout_seconds = a_day_two_and_a_timeout_of(s3, tmp_path, 1 / 3)
    dead_letters: list[str] = []
    runs_started = 0

    def run_event(event: Any, context: Any, durable_run: DurableRun | None = None) -> dict[str, Any]:
        nonlocal runs_started
        runs_started += 1
        return ingest.handler(event, context, durable_run)

    continuation = Continuation(
        run_event=run_event,
        dead_letter=lambda event, error: dead_letters.append(str(error)) or "dead-letter-id",
        max_runs=MAX_RUNS,
        pause_seconds=1,
        run_context=lambda context: LocalContext("ingest", timeout_seconds=timeout_seconds, aws_request_id="the-one-request"),
    )
    durable_handler = durable_execution(continuation)
    invocations = 0

    def lambda_entry(event: Any, context: Any) -> Any:
        nonlocal invocations
        invocations += 1
        if invocations == 2:
            raise ConnectionResetError("the runtime process was killed")  # Runtime.ExitError, as the service sees it
        return durable_handler(event, context)

    # When the file's arrival starts one durable execution
    with DurableFunctionTestRunner(handler=lambda_entry) as runner:
        result = runner.run(input=json.dumps({"sync_date": "2026-01-30"}), execution_timeout=900, execution_name="2026-01-30")

    # Then the service invoked the execution again, which replayed the first run from its checkpoint (not run again)
    # and went on: every run of the plain handler is one checkpointed run, and the date completed exactly
    assert result.status is InvocationStatus.SUCCEEDED, result.error
    assert json.loads(result.result or "null")["status"] == "completed"
    assert invocations >= 3
    runs = [operation.name for operation in result.operations if (operation.name or "").startswith("run ")]
    assert runs_started == len(runs) >= 2, (runs_started, runs)
    assert dead_letters == []
    assert table_rows(db) == {**expected_rows(earlier[0]), **expected_rows(earlier[1]), **expected_rows(file_table)}
    recorded = query(db, "SELECT status FROM upsell_signal_sync_runs WHERE sync_date = '2026-01-30' ORDER BY id")
    assert [run["status"] for run in recorded] == ["handed_over"] * (len(runs) - 1) + ["completed"]


def test_a_hand_over_left_unrecorded_is_resumed_by_the_next_run_at_once_and_the_date_completes(
    s3: Any, db: pymysql.Connection[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a day two that needs several runs, and the first run's hand-over never recorded (the run ended between
    # its last committed chunk and the record: the database gone at that moment), so the date stays held under the
    # first run's live lease (30 s) when the next run of the same execution starts, a pause (1 s) later
    earlier, file_table, timeout_seconds = a_day_two_and_a_timeout_of(s3, tmp_path, 1 / 3)
    recorded_hand_over = claims.record_hand_over
    unrecorded: list[str] = []

    def first_hand_over_lost(connect: Any, held: Any, handed: Any) -> None:
        if not unrecorded:
            unrecorded.append(str(handed))
            return
        recorded_hand_over(connect, held, handed)

    monkeypatch.setattr(claims, "record_hand_over", first_hand_over_lost)
    dead_letters: list[str] = []

    # When the file's arrival starts one durable execution
    with DurableFunctionTestRunner(handler=durable(timeout_seconds, dead_letters)) as runner:
        result = runner.run(input=json.dumps({"sync_date": "2026-01-30"}), execution_timeout=900, execution_name="2026-01-30")

    # Then the second run resumed the execution's own claim without waiting out the lease, and the execution
    # completed the date exactly: not an in_progress answer that ends the execution with the date unsynced
    assert len(unrecorded) == 1
    assert result.status is InvocationStatus.SUCCEEDED, result.error
    answer = json.loads(result.result or "null")
    assert answer["status"] == "completed", answer
    assert dead_letters == []
    assert table_rows(db) == {**expected_rows(earlier[0]), **expected_rows(earlier[1]), **expected_rows(file_table)}
    # and the ledger names the execution that holds the date, and every run claimed under its one token
    [ledger] = query(db, "SELECT status, holder_token, durable_execution_arn, durable_run FROM upsell_signal_sync_metadata WHERE sync_date = '2026-01-30'")
    assert ledger["status"] == "completed"
    assert ledger["holder_token"] == holder_token_of(ledger["durable_execution_arn"])
    runs = [operation.name for operation in result.operations if (operation.name or "").startswith("run ")]
    assert ledger["durable_run"] == len(runs) >= 2
    claims_taken = query(db, "SELECT COUNT(DISTINCT attempt) AS n FROM upsell_signal_sync_runs WHERE sync_date = '2026-01-30'")
    assert claims_taken[0]["n"] == 1  # one claim, resumed run after run


def test_the_status_shows_a_date_being_continued_how_far_it_is_and_which_run_of_which_execution_holds_it(
    s3: Any, db: pymysql.Connection[Any], tmp_path: Path
) -> None:
    # Given a day two that needs several runs, and an operator asking for its status as the second run starts
    _, file_table, timeout_seconds = a_day_two_and_a_timeout_of(s3, tmp_path, 1 / 3)
    seen: list[dict[str, Any]] = []

    def run_event(event: Any, context: Any, durable_run: DurableRun | None = None) -> dict[str, Any]:
        if durable_run is not None and durable_run.number == 2:
            seen.append(ingest.handler({"action": "status", "sync_date": "2026-01-30"}, LocalContext("ingest")))
        return ingest.handler(event, context, durable_run)

    continuation = Continuation(
        run_event=run_event,
        dead_letter=lambda event, error: "dead-letter-id",
        max_runs=MAX_RUNS,
        pause_seconds=1,
        run_context=lambda context: LocalContext("ingest", timeout_seconds=timeout_seconds, aws_request_id="the-one-request"),
    )
    # When the file's arrival starts one durable execution
    with DurableFunctionTestRunner(handler=durable_execution(continuation)) as runner:
        result = runner.run(input=json.dumps({"sync_date": "2026-01-30"}), execution_timeout=900, execution_name="2026-01-30")

    # Then between the runs the date showed handed over by run 1 of this execution, with rows read of the file's rows
    assert json.loads(result.result or "null")["status"] == "completed"
    [report] = seen
    progress = report["progress"]
    assert (progress["phase"], progress["durable_run"]) == ("handed_over", 1)
    assert progress["durable_execution_arn"]  # the testing SDK's ARN: Lambda's is arn:...:function:...:7/durable-execution/<name>/<id>
    assert 0 < progress["rows_read"] < progress["rows_in_file"] == file_table.num_rows
    # and the text an operator reads says so in words
    text = format_status(report)
    assert "handed_over" in text and "run 1 of durable execution" in text and "run 2 resumes after its pause" in text
    assert progress["durable_execution_arn"] in text
    assert f"of {file_table.num_rows:,} rows read" in text


def test_a_status_request_is_answered_before_any_step_so_no_checkpoint_holds_its_answer(
    s3: Any, db: pymysql.Connection[Any], tmp_path: Path
) -> None:
    # Given a date synced
    s3.upload_file(str(write_pyarrow(snowflake_table(500, seed=402), tmp_path / "first.parquet")), BUCKET, FIRST_KEY)
    assert ingest.handler({"sync_date": "2026-01-28"}, LocalContext("ingest"))["status"] == "completed"
    dead_letters: list[str] = []

    # When an operator asks the durable ingest for that date's status
    with DurableFunctionTestRunner(handler=durable(60, dead_letters)) as runner:
        result = runner.run(input=json.dumps({"action": "status", "sync_date": "2026-01-28"}), execution_timeout=900)

    # Then it answers the report as the execution's result, with no operation at all: no step's
    # checkpoint holds the answer (Lambda takes at most 1 MB there; a long history is more)
    assert result.status is InvocationStatus.SUCCEEDED
    answer = json.loads(result.result or "null")
    assert [run["status"] for run in answer["runs"]] == ["completed"]
    assert list(result.operations) == []
    assert dead_letters == []
