"""A kill at every step boundary, and a server restart mid-publish: the next run ends exact.

Each sync under test runs in a process of its own (`scripts/invoke ingest`, the deployed lease
scaled as tests/lambda_timing.py scales Lambda's retry) and is killed (SIGKILL) at one step
boundary of the kill matrix (tests/integration/kill_points.py), found from outside the process.
tests/e2e/test_kill_matrix_on_lambda.py kills the deployed artifact at the same boundaries.

For every kill point Lambda's next run, at Lambda's retry spacing, must complete, leave the table equal to the file's
rows (computed independently, `expected_rows`) and the metadata `completed` with exact
counts, while a reader polling the table on its own connection sees nothing but the day
before or the day after.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pymysql
import pytest

from functions.ingest.hooks import SyncHooks
from functions.ingest.repository import Repository
from functions.ingest.service import SyncService
from functions.ingest.sync_values import SyncAnswer, SyncOptions
from functions.shared.db import connect
from functions.shared.errors import TransientError
from functions.shared.settings import DatabaseSettings
from tests.factories import day_two, write_pyarrow
from tests.integration.conftest import (
    BUCKET,
    DAY_ONE,
    DAY_TWO,
    Outcome,
    day_one_published_and_day_two_uploaded,
    expected_rows,
    in_a_thread,
    invoke_in_a_process,
    service_on,
    table_rows,
    upload_to,
    work_dir_for,
)
from tests.integration.dedicated_server import DedicatedServer
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
    STEP_TIMEOUT_SECONDS,
    KillPoint,
    ProcessWorker,
    Victim,
    assert_completed_exactly,
    assert_never_partial,
    day_one,
    etag_of,
    expected_counts,
    fingerprint,
    metadata_of,
    read_until,
    reading_throughout,
    wait_for_statement,
)
from tests.lambda_timing import (
    DATABASE_OUTAGE_SECONDS,
    FIRST_RETRY_SECONDS,
    LEASE_SECONDS,
    TRANSIENT_RETRIES,
    TRANSIENT_WAIT_SECONDS,
)

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
def test_a_sync_killed_at_a_step_boundary_ends_exact_after_the_next_run(
    point: KillPoint,
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the table as it was the day before (empty for a first load), and the date's file in S3
    day_one_table, day_one_rows = day_one(point.rows)
    if point.first_load:
        sync_date, file_table, keys_before = DAY_ONE, day_one_table, set()
    else:
        upload_to(moto_endpoint, DAY_ONE, write_pyarrow(day_one_table, tmp_path / "one.parquet"))
        service_on(moto_endpoint, migrated_settings, tmp_path).sync(DAY_ONE, None, SyncOptions(invocation_id="day-one"))
        sync_date, file_table = DAY_TWO, day_two(day_one_table, seed=302, **point.day_two_shape)
        keys_before = set(day_one_table[KEY_FIELD].to_pylist())
    upload_to(moto_endpoint, sync_date, write_pyarrow(file_table, tmp_path / "file.parquet"))
    rows_after = len(keys_before | set(file_table[KEY_FIELD].to_pylist()))
    before = fingerprint(db)
    work_dir = tmp_path / "killed"
    work_dir.mkdir()

    with reading_throughout(migrated_settings) as reader:
        # When its sync, in a process of its own, is killed at the step boundary
        for name, value in point.env.items():
            monkeypatch.setenv(name, value)  # the process's settings come from its environment
        worker = ProcessWorker(invoke_in_a_process(moto_endpoint, migrated_settings, work_dir, sync_date), work_dir)
        try:
            point.kill(Victim(worker, db, migrated_settings, sync_date, file_table.num_rows, rows_after, before[0]))
        finally:
            worker.kill()
        assert fingerprint(db) == before  # nothing of the killed sync is visible
        assert metadata_of(db, sync_date)["status"] == "started"

        # Then Lambda's retry, at its own spacing after the kill (scaled) and whatever the lease,
        # takes the date over and completes it exactly
        time.sleep(FIRST_RETRY_SECONDS)
        result = service_on(moto_endpoint, migrated_settings, tmp_path, sleep=None, hooks=None, **point.env).sync(
            sync_date, None, SyncOptions(invocation_id="next-run")
        )
        after = fingerprint(db)
        read_until(reader, after)

    table_before = {} if point.first_load else day_one_rows
    file_rows = expected_rows(file_table)
    assert table_rows(db) == {**table_before, **file_rows}
    assert_completed_exactly(
        db, etag_of(moto_endpoint, BUCKET, sync_date), sync_date, result.as_dict(), expected_counts(table_before, file_rows)
    )
    assert result.claim_number == 2
    # And no reader ever saw anything but the day before or the day after
    assert reader.errors == 0
    assert_never_partial(reader, before, after)


# -- a server restart mid-publish ---------------------------------------------------------------


def with_the_deployed_retries(endpoint: str, settings: DatabaseSettings, work_dir: Path, hooks: SyncHooks | None = None) -> SyncService:
    """A service with the deployed lease and in-process retries (scaled), staging 1,000 rows a chunk."""
    return service_on(
        endpoint,
        settings,
        work_dir,
        sleep=time.sleep,
        hooks=hooks,
        CLAIM_LEASE_SECONDS=str(LEASE_SECONDS),
        TRANSIENT_RETRIES=str(TRANSIENT_RETRIES),
        TRANSIENT_WAIT_SECONDS=str(TRANSIENT_WAIT_SECONDS),
        STAGING_CHUNK_ROWS="1000",
    )


RESTART_STATEMENTS = {
    "mid-staging": "LOAD DATA %upsell_signal_staging%",
    "mid-publish": "UPDATE %company_upsell_signals%SET%",
}


@pytest.mark.parametrize("where", sorted(RESTART_STATEMENTS))
def test_a_server_restart_within_the_wait_costs_the_run_a_wait_not_the_date(
    where: str, dedicated_server: tuple[DedicatedServer, DatabaseSettings], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given a server of this test's own, day one published on it, and day two (every row changed)
    # syncing there in another thread with the deployed lease and in-process retries, scaled
    server, settings = dedicated_server
    day_one_table, day_two_table = day_one_published_and_day_two_uploaded(
        moto_endpoint, settings, tmp_path, 20_000, seed=313, model_run_everywhere=True
    )
    watcher = connect(settings)
    watcher.autocommit(True)
    before = fingerprint(watcher)
    outcome: list[SyncAnswer | BaseException] = []
    interrupted = with_the_deployed_retries(moto_endpoint, settings, work_dir_for(tmp_path, "interrupted"))

    def run_interrupted() -> None:
        try:
            outcome.append(interrupted.sync(DAY_TWO, None, SyncOptions(invocation_id="interrupted")))
        except BaseException as error:  # handed to the assertions below
            outcome.append(error)

    with reading_throughout(settings) as reader:
        syncing = threading.Thread(target=run_interrupted, name="interrupted")
        syncing.start()

        # When the server is killed hard (SIGKILL) at that step, and is back on its data within
        # the outage an RDS failover may last (scaled)
        try:
            wait_for_statement(watcher, settings, RESTART_STATEMENTS[where], lambda: True)
        finally:
            watcher.close()
            server.kill_hard()
        went = time.monotonic()
        time.sleep(DATABASE_OUTAGE_SECONDS / 2)
        server.start()
        outage_seconds = time.monotonic() - went
        syncing.join(timeout=STEP_TIMEOUT_SECONDS)
        checker = connect(settings)
        checker.autocommit(True)
        after = fingerprint(checker)
        read_until(reader, after)

    # Then the run itself waited and completed the date exactly, as its first attempt
    try:
        [result] = outcome
        assert isinstance(result, SyncAnswer), result
        assert outage_seconds < DATABASE_OUTAGE_SECONDS
        table_before, file_rows = expected_rows(day_one_table), expected_rows(day_two_table)
        assert table_rows(checker) == {**table_before, **file_rows}
        assert_completed_exactly(
            checker, etag_of(moto_endpoint, BUCKET, DAY_TWO), DAY_TWO, result.as_dict(), expected_counts(table_before, file_rows)
        )
        assert result.claim_number == 1
        # And the reader, through the restart, saw only the day before or the day after
        assert reader.errors > 0, "the reader never noticed the server go"
        assert_never_partial(reader, before, after)
    finally:
        checker.close()


def test_two_server_restarts_further_apart_than_the_wait_each_cost_the_run_a_wait(
    dedicated_server: tuple[DedicatedServer, DatabaseSettings], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given day two syncing on a server of this test's own, with the deployed in-process
    # retries (scaled), its publish starting only once the wait has passed since the first
    # restart (a slow run: the work between two outages)
    server, settings = dedicated_server
    day_one_table, day_two_table = day_one_published_and_day_two_uploaded(
        moto_endpoint, settings, tmp_path, 20_000, seed=317, model_run_everywhere=True
    )
    first_restart: list[float] = []

    def slow_until_the_wait_has_passed(_repository: Repository) -> None:
        if first_restart:
            time.sleep(max(0.0, first_restart[0] + TRANSIENT_WAIT_SECONDS + 1 - time.monotonic()))

    twice = with_the_deployed_retries(
        moto_endpoint, settings, work_dir_for(tmp_path, "twice"), hooks=SyncHooks(before_publish=slow_until_the_wait_has_passed)
    )
    outcomes: dict[str, Outcome] = {}
    syncing = in_a_thread(outcomes, "twice", lambda: twice.sync(DAY_TWO, None, SyncOptions(invocation_id="twice")))

    # When the server is killed hard mid-staging and is back within the outage, and again,
    # more than the wait later, mid-publish
    for statement in (RESTART_STATEMENTS["mid-staging"], RESTART_STATEMENTS["mid-publish"]):
        watcher = connect(settings)
        try:
            wait_for_statement(watcher, settings, statement, lambda: True)
        finally:
            watcher.close()
        server.kill_hard()
        first_restart.append(time.monotonic())
        time.sleep(DATABASE_OUTAGE_SECONDS / 2)
        server.start()
    syncing.join(timeout=STEP_TIMEOUT_SECONDS)

    # Then the run waited out each outage and completed the date itself, exactly
    result = outcomes["twice"]
    assert isinstance(result, SyncAnswer), result
    assert first_restart[1] - first_restart[0] > TRANSIENT_WAIT_SECONDS
    checker = connect(settings)
    try:
        table_before, file_rows = expected_rows(day_one_table), expected_rows(day_two_table)
        assert table_rows(checker) == {**table_before, **file_rows}
        assert_completed_exactly(
            checker, etag_of(moto_endpoint, BUCKET, DAY_TWO), DAY_TWO, result.as_dict(), expected_counts(table_before, file_rows)
        )
        assert result.claim_number == 1
    finally:
        checker.close()


def test_a_server_down_longer_than_the_wait_fails_the_run_and_lambdas_retry_completes_the_date(
    dedicated_server: tuple[DedicatedServer, DatabaseSettings], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given a server of this test's own, day one published on it, and day two (every row
    # changed) syncing there in another thread, with the deployed lease (scaled) and no time to wait
    server, settings = dedicated_server
    day_one_table, day_two_table = day_one_published_and_day_two_uploaded(
        moto_endpoint, settings, tmp_path, 10_000, seed=311, model_run_everywhere=True
    )
    watcher = connect(settings)
    watcher.autocommit(True)
    before = fingerprint(watcher)
    outcome: list[SyncAnswer | BaseException] = []
    (tmp_path / "interrupted").mkdir()
    interrupted = service_on(moto_endpoint, settings, tmp_path / "interrupted", CLAIM_LEASE_SECONDS=str(LEASE_SECONDS))

    def run_interrupted() -> None:
        try:
            outcome.append(interrupted.sync(DAY_TWO, None, SyncOptions(invocation_id="interrupted")))
        except BaseException as error:  # handed to the assertions below
            outcome.append(error)

    with reading_throughout(settings) as reader:
        syncing = threading.Thread(target=run_interrupted, name="interrupted")
        syncing.start()

        # When the server is killed hard (SIGKILL) while the publish's UPDATE runs, and is back only after the run gave up
        try:
            wait_for_statement(watcher, settings, "UPDATE %company_upsell_signals%SET%", lambda: True)
        finally:
            watcher.close()
            server.kill_hard()
        syncing.join(timeout=STEP_TIMEOUT_SECONDS)
        server.start()

        # Then the interrupted attempt failed as transient (its retries found no server), or
        # completed if a retry reached the server again
        [result] = outcome
        assert isinstance(result, TransientError) or (isinstance(result, SyncAnswer) and result.status == "completed"), result

        # And Lambda's retry, at its spacing (scaled), completes the date exactly
        time.sleep(FIRST_RETRY_SECONDS)
        next_run = service_on(moto_endpoint, settings, tmp_path).sync(DAY_TWO, None, SyncOptions(invocation_id="next-run"))
        checker = connect(settings)
        checker.autocommit(True)
        after = fingerprint(checker)
        read_until(reader, after)

    table_before, file_rows = expected_rows(day_one_table), expected_rows(day_two_table)
    try:
        assert table_rows(checker) == {**table_before, **file_rows}
        counts = expected_counts(table_before, file_rows)
        if isinstance(result, SyncAnswer):
            assert next_run.status == "skipped"  # the retry published it already
            assert {name: metadata_of(checker, DAY_TWO)[name] for name in counts} == counts
        else:
            assert_completed_exactly(checker, etag_of(moto_endpoint, BUCKET, DAY_TWO), DAY_TWO, next_run.as_dict(), counts)
        # And the reader, through the restart, saw only the day before or the day after
        assert reader.errors > 0, "the reader never noticed the server go"
        assert_never_partial(reader, before, after)
    finally:
        checker.close()
