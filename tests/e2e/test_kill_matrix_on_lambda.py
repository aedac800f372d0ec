"""The kill matrix on the deployed artifact: the platform kills the execution environment at every step boundary.

Each test runs the dev template's ingest on the local Lambda (tests/local_lambda) against the
suite's MariaDB and moto, as tests/e2e/test_ingest_meets_lambda.py does, with Lambda's timings
scaled (tests/lambda_timing.py). A date's file arrives asynchronously, as EventBridge delivers
it; at one of the kill matrix's step boundaries (tests/integration/kill_points.py, found from
outside the runtime process) the platform kills the execution environment (SIGKILL to its
process group: a host failure, whatever the function was doing), and the durable execution's
next invocation, on a fresh environment, replays the run that died under the same holder token
(functions/ingest/continuation.py), resumes its own claim and must finish the date exactly.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pymysql
import pytest

from functions.shared.contract import object_key_for
from functions.shared.settings import DatabaseSettings
from tests.e2e.deployed_ingest import StandIns, file_arrival, wait_until
from tests.e2e.test_ingest_meets_lambda import PATIENCE_SECONDS, on_local_lambda, scaled_ingest
from tests.factories import day_two, write_pyarrow
from tests.integration.conftest import DAY_ONE, DAY_TWO, PREFIX, expected_rows, table_rows
from tests.integration.kill_points import (
    AFTER_DOWNLOAD,
    AFTER_PUBLISH_BEFORE_COMMIT,
    DURING_LISTING,
    KEY_FIELD,
    MATRIX,
    MID_PUBLISH_FIRST_LOAD,
    MID_PUBLISH_INSERT,
    MID_PUBLISH_UPDATE,
    MID_STAGING,
    KillPoint,
    Victim,
    assert_completed_exactly,
    assert_never_partial,
    day_one,
    expected_counts,
    fingerprint,
    metadata_of,
    read_until,
    reading_throughout,
)
from tests.local_lambda import DurableEvent, DurableFunction, Template

# Chunks of 1,000 rows (a setting, as the kill matrix runs it): the staging kill points need several.
CHUNK_ROWS = "1000"


@dataclass(frozen=True)
class EnvironmentWorker:
    """The first invocation of a durable execution, in the local Lambda's execution environment, seen from outside."""

    function: DurableFunction
    event: DurableEvent

    def work_dir(self) -> Path:
        """The environment's /tmp (its WORK_DIR), read from the runtime process's environment in /proc."""
        pid = wait_until(
            lambda: self.running() and self.function.function.runtime_pid, timeout=PATIENCE_SECONDS, what="the runtime"
        )
        variables = dict(entry.split("=", 1) for entry in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in entry)
        return Path(variables["WORK_DIR"])

    def running(self) -> bool:
        if self.event.results:
            [ended] = self.event.results
            raise AssertionError(f"the invocation ended ({ended.outcome}: {ended.payload}) before reaching its kill point")
        return True

    def stop(self) -> None:
        pid = self.function.function.runtime_pid
        assert pid is not None, "no execution environment to stop"
        os.killpg(pid, signal.SIGSTOP)

    def kill(self) -> None:
        """The platform kills the environment; returns once Lambda has reported the invocation."""
        if not self.event.results:
            self.function.function.kill_environment()
        wait_until(lambda: self.event.results, timeout=PATIENCE_SECONDS, what="the killed invocation's report")


def day_published_by_lambda(ingest: DurableFunction, stand_ins: StandIns, tmp_path: Path, sync_date: dt.date, table: Any) -> None:
    """The day's file uploaded and its arrival synced by the function (the warm environment the next event meets)."""
    key = object_key_for(PREFIX, sync_date)
    stand_ins.s3.upload_file(str(write_pyarrow(table, tmp_path / f"{sync_date}.parquet")), stand_ins.bucket, key)
    event = ingest.invoke_async(file_arrival(stand_ins.bucket, key))
    ingest.wait_idle(timeout=PATIENCE_SECONDS)
    assert (event.status, event.answer["status"]) == ("SUCCEEDED", "completed"), (event.status, event.answer)


def run_history(db: pymysql.Connection[Any], sync_date: dt.date) -> list[tuple[int, str, str | None]]:
    """The date's runs in order: claim number (the `attempt` column), status, error type."""
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT attempt, status, error_type FROM upsell_signal_sync_runs WHERE sync_date = %s ORDER BY id", (sync_date,)
        )
        return [(int(claim), status, error) for claim, status, error in cursor.fetchall()]


KILL_POINTS = [
    AFTER_DOWNLOAD,
    MID_STAGING,
    DURING_LISTING,
    MID_PUBLISH_UPDATE,
    MID_PUBLISH_INSERT,
    MID_PUBLISH_FIRST_LOAD,
    AFTER_PUBLISH_BEFORE_COMMIT,
]
assert tuple(KILL_POINTS) == MATRIX, "every kill point of the matrix, in its order"


@pytest.mark.parametrize("point", KILL_POINTS, ids=[point.name for point in KILL_POINTS])
def test_an_environment_killed_at_a_step_boundary_is_finished_exactly_by_the_executions_next_invocation(
    point: KillPoint,
    template: Template,
    stand_ins: StandIns,
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    tmp_path: Path,
) -> None:
    spec = scaled_ingest(template, stand_ins, STAGING_CHUNK_ROWS=CHUNK_ROWS).with_environment(**point.env)
    with on_local_lambda(spec, stand_ins, tmp_path / "ingest.log") as ingest:
        # Given the table as it was the day before (published by the function; empty for a first load)
        day_one_table, day_one_rows = day_one(point.rows)
        if point.first_load:
            sync_date, file_table, keys_before = DAY_ONE, day_one_table, set()
        else:
            day_published_by_lambda(ingest, stand_ins, tmp_path, DAY_ONE, day_one_table)
            sync_date, file_table = DAY_TWO, day_two(day_one_table, seed=302, **point.day_two_shape)
            keys_before = set(day_one_table[KEY_FIELD].to_pylist())
        # And the date's file in S3
        key = object_key_for(PREFIX, sync_date)
        stand_ins.s3.upload_file(str(write_pyarrow(file_table, tmp_path / "file.parquet")), stand_ins.bucket, key)
        rows_after = len(keys_before | set(file_table[KEY_FIELD].to_pylist()))
        before = fingerprint(db)

        with reading_throughout(migrated_settings) as reader:
            # When its arrival runs, and the platform kills the execution environment at the step boundary
            event = ingest.invoke_async(file_arrival(stand_ins.bucket, key))
            worker = EnvironmentWorker(ingest, event)
            try:
                point.kill(Victim(worker, db, migrated_settings, sync_date, file_table.num_rows, rows_after, before[0]))
            finally:
                worker.kill()
            assert fingerprint(db) == before  # nothing of the killed attempt is visible
            assert metadata_of(db, sync_date)["status"] == "started"

            # Then the execution's next invocation replays the run, resumes its own claim and completes the date
            ingest.wait_idle(timeout=PATIENCE_SECONDS)
            after = fingerprint(db)
            read_until(reader, after)

    # The kill was reported as Lambda reports an abrupt exit; the execution's next invocation ran cold and succeeded
    killed, resumed = event.results
    assert (killed.outcome, killed.payload["errorType"]) == ("exit", "Runtime.ExitError"), killed.payload
    assert killed.payload["errorMessage"].endswith("Runtime exited with error: signal: killed")
    assert (resumed.outcome, resumed.cold_start) == ("success", True), resumed.payload
    assert event.status == "SUCCEEDED", event.error
    # And the table equals the file over the day before, the ledger completed with exact counts, under the same claim
    table_before = {} if point.first_load else day_one_rows
    file_rows = expected_rows(file_table)
    assert table_rows(db) == {**table_before, **file_rows}
    etag = str(stand_ins.s3.head_object(Bucket=stand_ins.bucket, Key=key)["ETag"]).strip('"')
    assert_completed_exactly(db, etag, sync_date, event.answer, expected_counts(table_before, file_rows))
    # (the same run replayed holds the same token: its claim is its own, resumed rather than taken over)
    assert event.answer["attempt"] == 1
    assert run_history(db, sync_date) == [(1, "failed", "TakenOver"), (1, "completed", None)]
    # And nothing waits for a person, and no reader ever saw anything but the day before or the day after
    assert stand_ins.dead_letters() == []
    assert reader.errors == 0
    assert_never_partial(reader, before, after)


# Lambda's smallest memory size: the runtime and the ingest's imports fit (about 100 MB), reading and
# staging a file of 20,000 rows does not. Lambda runs every invocation of an execution with the same configuration.
TOO_LITTLE_MEMORY_MB = 128
OOM_ROWS = 20_000


def lease_lapsed(db: pymysql.Connection[Any], sync_date: dt.date) -> bool:
    """No dead run holds the date any more: its lease ran out by the server's clock (or none ever claimed it)."""
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT lease_expires_at IS NULL OR lease_expires_at <= NOW() FROM upsell_signal_sync_metadata WHERE sync_date = %s",
            (sync_date,),
        )
        row = cursor.fetchone()
        return row is None or bool(row[0])  # no row: no run got as far as claiming it


def test_a_function_killed_at_its_memory_size_fails_its_execution_and_its_redrive_completes_once_memory_is_raised(
    template: Template,
    stand_ins: StandIns,
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    tmp_path: Path,
) -> None:
    # Given a day's file, and the function sized below what reading it takes
    sync_date, file_table = DAY_ONE, day_one(OOM_ROWS)[0]
    key = object_key_for(PREFIX, sync_date)
    stand_ins.s3.upload_file(str(write_pyarrow(file_table, tmp_path / "file.parquet")), stand_ins.bucket, key)
    sized = scaled_ingest(template, stand_ins)
    starved = replace(sized, memory_mb=TOO_LITTLE_MEMORY_MB)
    assert sized.memory_mb > starved.memory_mb
    before = fingerprint(db)

    with reading_throughout(migrated_settings) as reader:
        # When its arrival starts an execution, whose every invocation runs with the same configuration
        with on_local_lambda(starved, stand_ins, tmp_path / "starved.log") as ingest:
            event = ingest.invoke_async(file_arrival(stand_ins.bucket, key))
            ingest.wait_idle(timeout=PATIENCE_SECONDS)
            invocations_allowed = ingest.executor.MAX_CONSECUTIVE_FAILED_ATTEMPTS

        # Then every invocation was killed at the memory size, each on a fresh environment, reported as Lambda reports
        # it, until the service stopped invoking a failing execution and failed it (the testing SDK's model of Lambda's)
        assert [(r.outcome, r.payload["errorType"], r.cold_start) for r in event.results] == [
            ("out_of_memory", "Runtime.OutOfMemory", True)
        ] * invocations_allowed
        assert all(r.max_memory_used_mb >= TOO_LITTLE_MEMORY_MB for r in event.results)
        assert event.status == "FAILED", event.status
        assert event.error is not None and "Runtime.OutOfMemory" in event.error["errorMessage"], event.error
        # And one dead letter of the execution is on the queue (the event as-is, the reason in its attributes);
        # nothing of the date is published
        [(record, attributes)] = stand_ins.dead_letters_with_attributes()
        assert record == file_arrival(stand_ins.bucket, key)
        assert "Runtime.OutOfMemory" in attributes["ErrorMessage"]
        assert fingerprint(db) == before

        # When the function is given its memory back (a configuration update: fresh environments) and, once
        # the last dead run's lease ran out (the redrive is another execution: another holder), the event is sent back
        wait_until(lambda: lease_lapsed(db, sync_date), timeout=PATIENCE_SECONDS, what="the dead run's lease to run out")
        with on_local_lambda(sized, stand_ins, tmp_path / "sized.log") as ingest:
            redrive = ingest.invoke(record)
        after = fingerprint(db)
        read_until(reader, after)

    # Then the redrive's execution completed the date exactly, and no reader saw a partial day
    assert (redrive.status, redrive.answer["status"]) == ("SUCCEEDED", "completed"), (redrive.status, redrive.answer)
    file_rows = expected_rows(file_table)
    assert table_rows(db) == file_rows
    etag = str(stand_ins.s3.head_object(Bucket=stand_ins.bucket, Key=key)["ETag"]).strip('"')
    assert_completed_exactly(db, etag, sync_date, redrive.answer, expected_counts({}, file_rows))
    assert stand_ins.dead_letters() == []
    assert reader.errors == 0
    assert_never_partial(reader, before, after)
