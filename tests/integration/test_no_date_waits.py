"""No date waits for a person: a run killed without a word is finished by Lambda's own retry, and a
publish that no run could hold is refused at once rather than killed at every timeout.

Timings are Lambda's, scaled (tests/lambda_timing.py): the retry comes at its spacing after the
kill, whatever the lease says, as it does in AWS.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pymysql
import pytest

from functions.ingest.hooks import SyncHooks
from functions.ingest.sync_values import SyncOptions
from functions.migrate.files import discover_migrations
from functions.migrate.migrator import Migrator
from functions.shared.db import connect
from functions.shared.errors import HandedOver, PermanentError, PublishTooLong
from functions.shared.settings import DatabaseSettings
from tests.integration.conftest import (
    DAY_TWO,
    chunks_committed,
    day_one_published_and_day_two_uploaded,
    expected_rows,
    invoke_in_a_process,
    query,
    service_on,
    table_rows,
    wait_for,
    work_dir_for,
)
from tests.integration.dedicated_server import DedicatedServer
from tests.lambda_timing import FIRST_RETRY_SECONDS, LEASE_SECONDS


def test_a_run_killed_at_its_timeout_while_the_database_is_paused_is_completed_by_lambdas_retry(
    dedicated_server: tuple[DedicatedServer, DatabaseSettings], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given day one published on a server of this test's own, and day two syncing in a process of
    # its own (scripts/invoke, the Lambda handler, the deployed lease scaled)
    server, settings = dedicated_server
    day_one_table, day_two_table = day_one_published_and_day_two_uploaded(moto_endpoint, settings, tmp_path, 20_000, seed=801)
    worker = invoke_in_a_process(
        moto_endpoint,
        settings,
        work_dir_for(tmp_path, "killed"),
        DAY_TWO,
        request_id="the-request",
        DB_HOST=settings.host or "",
        DB_PORT=str(settings.port),
        DB_USER=settings.user or "",
        DB_PASSWORD=settings.password or "",
    )
    watcher = connect(settings)
    watcher.autocommit(True)
    try:
        wait_for(lambda: chunks_committed(watcher, DAY_TWO) >= 3, 120, "three committed chunks")
    finally:
        watcher.close()

    # When the database stops answering mid-staging, the run waits on it until Lambda kills it at its
    # timeout (SIGKILL, no warning), the database comes back, and Lambda's retry of the same request
    # comes at its spacing after the kill
    server.pause()
    try:
        time.sleep(1)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        killed_at = time.monotonic()
        time.sleep(0.5)
    finally:
        server.resume()
    time.sleep(max(0.0, FIRST_RETRY_SECONDS - (time.monotonic() - killed_at)))
    result = service_on(moto_endpoint, settings, work_dir_for(tmp_path, "retry"), CLAIM_LEASE_SECONDS=str(LEASE_SECONDS)).sync(
        DAY_TWO, None, SyncOptions(invocation_id="the-request", trigger="eventbridge_s3")
    )

    # Then the retry takes the date over, resumes what was committed and completes it exactly
    assert (result.status, result.claim_number) == ("completed", 2), result.as_dict()
    assert (result.rows_resumed or 0) > 0
    checker = connect(settings)
    try:
        assert table_rows(checker) == {**expected_rows(day_one_table), **expected_rows(day_two_table)}
    finally:
        checker.close()


def test_a_publish_no_run_can_hold_fails_once_plainly_before_staging(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given day one published, and a day two whose one-transaction publish, at the configured
    # rate, needs longer than a whole run of the function (60 s)
    _, day_two_table = day_one_published_and_day_two_uploaded(moto_endpoint, migrated_settings, tmp_path, 5_000, seed=811)
    before = table_rows(db)
    started = time.monotonic()
    slow = service_on(moto_endpoint, migrated_settings, tmp_path, PUBLISH_ROWS_PER_SECOND="50", TIME_BUDGET_MARGIN_SECONDS="5")

    # When a run with a 60 s timeout syncs it
    with pytest.raises(PublishTooLong) as refused:
        slow.sync(DAY_TWO, None, SyncOptions(invocation_id="too-long", seconds_left=lambda: 60 - (time.monotonic() - started)))

    # Then it fails for good (no retry could do better), saying what it needs and what to change,
    # before staging a row, and the table is as it was
    assert isinstance(refused.value, PermanentError)
    message = str(refused.value)
    needed = round(day_two_table.num_rows / 50)
    assert f"publishing {day_two_table.num_rows} rows needs about {needed}s" in message and "raise the function's timeout" in message
    assert query(db, "SELECT COUNT(*) AS n FROM upsell_signal_staging WHERE sync_date = %s", (DAY_TWO,)) == [{"n": 0}]
    [ledger] = query(db, "SELECT status, error_message FROM upsell_signal_sync_metadata WHERE sync_date = %s", (DAY_TWO,))
    assert (ledger["status"], ledger["error_message"]) == ("failed", message)
    assert table_rows(db) == before


def test_a_publish_a_fresh_run_can_hold_is_handed_over_not_refused_by_a_run_with_little_time_left(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given day one published, and a day two whose publish, at the configured rate, fits a fresh run
    # of the function (60 s, 5 s of it margin: the whole file's 5,000 rows need 50 s) but not the 7 s
    # this run has left after the invocation's earlier work (a cold start, the dates synced before)
    day_one_table, day_two_table = day_one_published_and_day_two_uploaded(
        moto_endpoint, migrated_settings, tmp_path, 5_000, seed=812
    )
    slow = service_on(moto_endpoint, migrated_settings, tmp_path, PUBLISH_ROWS_PER_SECOND="100", TIME_BUDGET_MARGIN_SECONDS="5")
    started = time.monotonic()
    late = SyncOptions(invocation_id="late", run_seconds=60, seconds_left=lambda: 7 - (time.monotonic() - started))

    # When that run syncs it
    with pytest.raises(HandedOver) as handed:
        slow.sync(DAY_TWO, None, late)

    # Then it stages and hands the date over before the publish (no permanent failure: a fresh run can
    # hold it), and Lambda's retry, a fresh run, publishes what it staged, exactly
    assert "staged rows needs about" in str(handed.value) and "the next run publishes them" in str(handed.value)
    retried = slow.sync(DAY_TWO, None, SyncOptions(invocation_id="late", seconds_left=lambda: 60.0))
    assert (retried.status, retried.rows_resumed) == ("completed", day_two_table.num_rows), retried.as_dict()
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(day_two_table)}


def test_a_server_read_only_for_a_few_seconds_mid_sync_costs_a_wait_not_the_date(
    dedicated_server: tuple[DedicatedServer, DatabaseSettings], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given day one published on a server of this test's own, and day two syncing as the ingest account
    # (read_only binds every account without SUPER, as it binds ours on RDS)
    _, root = dedicated_server
    day_one_table, day_two_table = day_one_published_and_day_two_uploaded(moto_endpoint, root, tmp_path, 5_000, seed=821)
    password = uuid.uuid4().hex
    admin = connect(root)
    try:
        Migrator(admin, discover_migrations()).provision_ingest_user("upsell_ingest", password)
    finally:
        admin.close()
    switch = connect(root)
    switch.autocommit(True)
    lifted = threading.Timer(3.0, lambda: switch.cursor().execute("SET GLOBAL read_only = 0"))

    def read_only_for_three_seconds(_repository: Any) -> None:
        if not lifted.is_alive() and not lifted.finished.is_set():
            switch.cursor().execute("SET GLOBAL read_only = 1")
            lifted.start()

    # When, as the publish begins, the server turns read-only for 3 s (as the old primary does after an
    # RDS blue/green switchover, while a cached DNS answer still leads to it)
    service = service_on(
        moto_endpoint,
        replace(root, user="upsell_ingest", password=password),
        work_dir_for(tmp_path, "read-only"),
        sleep=time.sleep,
        hooks=SyncHooks(before_publish=read_only_for_three_seconds),
        TRANSIENT_RETRIES="10",
    )
    try:
        result = service.sync(DAY_TWO, None, SyncOptions(invocation_id="switchover"))
    finally:
        if lifted.is_alive() or lifted.finished.is_set():  # started: let it lift read_only before the server stops
            lifted.join()
        switch.close()

    # Then the refused write is retried in the same run, which completes the date exactly
    assert lifted.finished.is_set()
    assert (result.status, result.claim_number) == ("completed", 1), result.as_dict()
    checker = connect(root)
    try:
        assert table_rows(checker) == {**expected_rows(day_one_table), **expected_rows(day_two_table)}
    finally:
        checker.close()
