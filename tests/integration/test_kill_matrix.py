"""A kill at every step boundary, and a server restart mid-publish: the next run ends exact.

Each sync under test runs in a process of its own (`scripts/invoke ingest`, the deployed lease
scaled as tests/lambda_timing.py scales Lambda's retry) and is killed (SIGKILL) at one step boundary, found from outside the process: a file in
its work directory, the staging progress, or the statement the server is running for it
(information_schema.processlist). Nothing in the product knows it is being killed.

For every kill point Lambda's next run, at Lambda's retry spacing, must complete, leave the table equal to the file's
rows (computed independently, `expected_rows`) and the metadata `completed` with exact
counts, while a reader polling the table on its own connection sees nothing but the day
before or the day after.
"""

from __future__ import annotations

import datetime as dt
import functools
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pymysql
import pytest

from functions.ingest.columns import COLUMN_NAMES
from functions.ingest.sync_values import SyncAnswer, SyncOptions
from functions.shared.contract import object_key_for
from functions.shared.db import connect
from functions.shared.errors import TransientError
from functions.shared.settings import DatabaseSettings
from tests.factories import day_two, snowflake_table, write_pyarrow
from tests.integration.conftest import (
    BUCKET,
    DAY_ONE,
    DAY_TWO,
    PREFIX,
    chunks_committed,
    day_one_published_and_day_two_uploaded,
    expected_rows,
    invoke_in_a_process,
    query,
    service_on,
    table_rows,
    uncommitted_table_rows,
    upload_to,
    wait_for,
)
from tests.integration.dedicated_server import DedicatedServer
from tests.lambda_timing import (
    DATABASE_OUTAGE_SECONDS,
    FIRST_RETRY_SECONDS,
    LEASE_SECONDS,
    TRANSIENT_RETRIES,
    TRANSIENT_WAIT_SECONDS,
)

# Generous: the machine may be shared and slow; a kill point is usually reached in seconds.
STEP_TIMEOUT_SECONDS = 120
# Every data column, in one checksum: any partial day changes the count or the sum.
_EVERY_VALUE = ", ".join(f"COALESCE({name}, '~')" for name in COLUMN_NAMES)
FINGERPRINT_SQL = (
    f"SELECT COUNT(*) AS row_count, SUM(CRC32(CONCAT_WS('|', {_EVERY_VALUE}))) AS checksum FROM company_upsell_signals"
)
Fingerprint = tuple[int, int | None]
KEY_FIELD = "CDMS_CANONICAL_COMPANY_ID"


# -- a reader, polling throughout -------------------------------------------------------


@dataclass
class Reader:
    """A thread with its own autocommit connection that fingerprints the table over and over.

    Connection errors (a server restarting) are counted and the reader reconnects; what
    matters is that every fingerprint it did read is one of the two legal states.
    """

    settings: DatabaseSettings
    seen: list[Fingerprint] = field(default_factory=list)
    errors: int = 0
    _done: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Reader:
        self._thread = threading.Thread(target=self._poll, name="reader", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        assert self._thread is not None
        self._thread.join(timeout=60)

    def _poll(self) -> None:
        reader: pymysql.Connection[Any] | None = None
        while not self._done.is_set():
            try:
                if reader is None:
                    reader = connect(self.settings)
                    reader.autocommit(True)
                self.seen.append(fingerprint(reader))
                time.sleep(0.01)
            except Exception:
                self.errors += 1
                if reader is not None:
                    reader.close()
                reader = None
                time.sleep(0.05)
        if reader is not None:
            reader.close()


def fingerprint(connection: pymysql.Connection[Any]) -> Fingerprint:
    row = query(connection, FINGERPRINT_SQL)[0]
    return int(row["row_count"]), None if row["checksum"] is None else int(row["checksum"])


@contextmanager
def reading_throughout(settings: DatabaseSettings) -> Iterator[Reader]:
    reader = Reader(settings).start()
    try:
        yield reader
    finally:
        reader.stop()


def read_until(reader: Reader, state: Fingerprint) -> None:
    """Keep the reader going until it has read `state` (the published day) itself."""
    wait_for(lambda: bool(reader.seen) and reader.seen[-1] == state, STEP_TIMEOUT_SECONDS, "the reader to see the new day")


def assert_never_partial(reader: Reader, before: Fingerprint, after: Fingerprint) -> None:
    assert before != after
    assert len(reader.seen) >= 10, f"the reader read only {len(reader.seen)} times"
    partial = [seen for seen in reader.seen if seen not in (before, after)]
    assert not partial, f"a reader saw a partial day: {partial[:5]} (before {before}, after {after})"


# -- what the next run must end with ------------------------------------------------------


def expected_counts(table_before: dict[str, dict[str, Any]], file_rows: dict[str, dict[str, Any]]) -> dict[str, int]:
    """The metadata counts of publishing `file_rows` over `table_before` (keep mode, nothing rejected)."""
    inserted = len(file_rows.keys() - table_before.keys())
    updated = sum(1 for key, row in file_rows.items() if key in table_before and table_before[key] != row)
    return {
        "rows_processed": len(file_rows),
        "rows_inserted": inserted,
        "rows_updated": updated,
        "rows_unchanged": len(file_rows) - inserted - updated,
        "rows_rejected": 0,
        "rows_deleted": 0,
    }


def metadata_of(db: pymysql.Connection[Any], sync_date: dt.date) -> dict[str, Any]:
    [row] = query(db, "SELECT * FROM upsell_signal_sync_metadata WHERE sync_date = %s", (sync_date,))
    return row


def etag_of(endpoint: str, sync_date: dt.date) -> str:
    head = boto3.client("s3", endpoint_url=endpoint).head_object(Bucket=BUCKET, Key=object_key_for(PREFIX, sync_date))
    return str(head["ETag"]).strip('"')


def assert_completed_exactly(
    db: pymysql.Connection[Any], endpoint: str, sync_date: dt.date, result: SyncAnswer, counts: dict[str, int]
) -> None:
    assert result.status == "completed", result
    assert {name: getattr(result, name) for name in counts} == counts
    row = metadata_of(db, sync_date)
    assert (row["status"], row["completed_etag"], row["lease_expires_at"]) == ("completed", etag_of(endpoint, sync_date), None)
    assert {name: row[name] for name in counts} == counts


# -- finding a step boundary from outside the process ----------------------------------------


def running(db: pymysql.Connection[Any], settings: DatabaseSettings, pattern: str) -> int | None:
    """The id of a connection of the test database running a statement LIKE `pattern`, if any."""
    rows = query(
        db,
        "SELECT id FROM information_schema.processlist "
        "WHERE db = %s AND command = 'Query' AND info LIKE %s AND id <> CONNECTION_ID()",
        (settings.name, pattern),
    )
    return int(rows[0]["id"]) if rows else None


def wait_for_statement(
    db: pymysql.Connection[Any],
    settings: DatabaseSettings,
    pattern: str,
    ready: Callable[[], bool],
    worker: subprocess.Popen[bytes] | None = None,
) -> int:
    """Wait until a connection runs a statement like `pattern` while `ready()`; its id."""
    found: list[int] = []

    def seen() -> bool:
        connection_id = running(db, settings, pattern)
        if connection_id is not None and ready():
            found.append(connection_id)
        elif worker is not None:
            still_running(worker)
        return bool(found)

    wait_for(seen, STEP_TIMEOUT_SECONDS, f"a statement like {pattern!r}")
    return found[0]


def still_running(worker: subprocess.Popen[bytes]) -> bool:
    """True while the sync's process runs; fails the test at once if it ended before its kill point."""
    if worker.poll() is not None:
        raise AssertionError(f"the sync ended (exit code {worker.returncode}) before reaching its kill point")
    return True


def progress_of(db: pymysql.Connection[Any], sync_date: dt.date) -> dict[str, Any]:
    rows = query(db, "SELECT * FROM upsell_signal_staging_progress WHERE sync_date = %s", (sync_date,))
    return rows[0] if rows else {"rows_read": 0, "chunks_committed": 0, "staging_complete": 0}


def kill(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=60)


def gone_from_the_server(db: pymysql.Connection[Any], connection_id: int) -> bool:
    """The killed client's session has ended server-side (its transaction rolled back)."""
    return not query(db, "SELECT 1 FROM information_schema.processlist WHERE id = %s", (connection_id,)) and not query(
        db, "SELECT 1 FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = %s", (connection_id,)
    )


@dataclass(frozen=True)
class Victim:
    """The process to kill, and what the test knows about its sync."""

    worker: subprocess.Popen[bytes]
    db: pymysql.Connection[Any]
    settings: DatabaseSettings
    work_dir: Path
    sync_date: dt.date
    file_rows: int
    rows_after: int  # rows in the table once the date is published


def kill_after_download(victim: Victim) -> None:
    """The verified file is renamed into place in the work directory: stop the process there, look, kill."""
    wait_for(
        lambda: still_running(victim.worker) and any(victim.work_dir.glob("*.parquet")),
        STEP_TIMEOUT_SECONDS,
        "the verified download",
    )
    victim.worker.send_signal(signal.SIGSTOP)
    assert not list(victim.work_dir.glob("*.part"))  # renamed into place: complete and verified
    assert progress_of(victim.db, victim.sync_date)["chunks_committed"] <= 1, "stopped well after the download"
    kill(victim.worker)


def kill_mid_staging(victim: Victim) -> None:
    wait_for(
        lambda: still_running(victim.worker) and chunks_committed(victim.db, victim.sync_date) >= 3,
        STEP_TIMEOUT_SECONDS,
        "three committed chunks",
    )
    kill(victim.worker)
    progress = progress_of(victim.db, victim.sync_date)
    assert 0 < progress["rows_read"] < victim.file_rows and not progress["staging_complete"]


def kill_while_listing(victim: Victim) -> None:
    """The listing connection is adding a committed chunk's changes to its list."""
    lister = wait_for_statement(
        victim.db,
        victim.settings,
        "INSERT INTO publish_changes %",
        lambda: chunks_committed(victim.db, victim.sync_date) >= 2,
        victim.worker,
    )
    kill(victim.worker)
    assert not progress_of(victim.db, victim.sync_date)["staging_complete"], "caught only the last chunk's listing"
    wait_for(lambda: gone_from_the_server(victim.db, lister), STEP_TIMEOUT_SECONDS, "the listing session's end")


def killing_during(pattern: str) -> Callable[[Victim], None]:
    """Kill the process while the server runs one of its publish statements (`pattern`)."""

    def kill_mid_statement(victim: Victim) -> None:
        publisher = wait_for_statement(victim.db, victim.settings, pattern, lambda: True, victim.worker)
        kill(victim.worker)
        # The server finishes or aborts the statement, then rolls the transaction back.
        wait_for(lambda: gone_from_the_server(victim.db, publisher), STEP_TIMEOUT_SECONDS, "the publisher's rollback")

    return kill_mid_statement


def kill_after_publish_before_commit(victim: Victim) -> None:
    """Stop the client while the server runs the last publish statement; kill it once that statement is done.

    The session then sits idle (Sleep) in its open transaction: every row of the day
    written, nothing committed, the completion not yet sent.
    """
    db = victim.db
    publisher = wait_for_statement(
        db, victim.settings, "INSERT INTO company_upsell_signals %SELECT%", lambda: True, victim.worker
    )
    victim.worker.send_signal(signal.SIGSTOP)

    def idle_in_its_transaction() -> bool:
        [session] = query(
            db,
            "SELECT p.command, t.trx_id FROM information_schema.processlist p "
            "LEFT JOIN information_schema.innodb_trx t ON t.trx_mysql_thread_id = p.id WHERE p.id = %s",
            (publisher,),
        )
        if session["command"] == "Sleep" and session["trx_id"] is None:
            raise AssertionError("the publish committed before the client was stopped: the kill point passed")
        return bool(session["command"] == "Sleep")

    wait_for(idle_in_its_transaction, STEP_TIMEOUT_SECONDS, "the last publish statement's end")
    assert uncommitted_table_rows(victim.settings) == victim.rows_after  # every row written...
    assert metadata_of(db, victim.sync_date)["status"] == "started"  # ...and nothing committed
    kill(victim.worker)
    wait_for(lambda: gone_from_the_server(db, publisher), STEP_TIMEOUT_SECONDS, "the publisher's rollback")


@dataclass(frozen=True)
class KillPoint:
    name: str
    kill: Callable[[Victim], None]
    first_load: bool = False  # the killed sync loads an empty table; else day one is published first
    rows: int = 10_000
    day_two_shape: dict[str, Any] = field(default_factory=dict)  # tests.factories.day_two's knobs
    env: dict[str, str] = field(default_factory=dict)  # settings of both runs


DOUBLED_ROW_COUNT = {"GUARD_MAX_ROW_COUNT_DRIFT": "1"}
KILL_POINTS = [
    KillPoint("after download", kill_after_download),
    KillPoint("mid-staging", kill_mid_staging),
    # Listing a chunk takes milliseconds: twenty chunks give the poll enough of them to catch.
    KillPoint("during listing", kill_while_listing, rows=20_000),
    # Every row's MODEL_UPDATED_AT is the model's run time: the UPDATE touches them all.
    KillPoint(
        "mid-publish update", killing_during("UPDATE %company_upsell_signals%SET%"), day_two_shape={"model_run_everywhere": True}
    ),
    # As many new keys as the day before had: the INSERT of new keys is the long statement
    # (the row count doubles, so the drift guard is opened for both runs).
    KillPoint(
        "mid-publish insert",
        killing_during("INSERT INTO company_upsell_signals %SELECT%"),
        day_two_shape={"new": 1.0},
        env=DOUBLED_ROW_COUNT,
    ),
    KillPoint("mid-publish first load", killing_during("LOAD DATA %INTO TABLE company_upsell_signals %"), first_load=True),
    KillPoint("after publish before commit", kill_after_publish_before_commit, day_two_shape={"new": 1.0}, env=DOUBLED_ROW_COUNT),
]


@functools.cache
def day_one(rows: int) -> tuple[pa.Table, dict[str, dict[str, Any]]]:
    """The day before's file and its expected rows (computed once: the latter takes seconds)."""
    table = snowflake_table(rows, seed=301)
    return table, expected_rows(table)


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
        worker = invoke_in_a_process(moto_endpoint, migrated_settings, work_dir, sync_date)
        try:
            point.kill(Victim(worker, db, migrated_settings, work_dir, sync_date, file_table.num_rows, rows_after))
        finally:
            if worker.poll() is None:
                kill(worker)
        assert fingerprint(db) == before  # nothing of the killed sync is visible
        assert metadata_of(db, sync_date)["status"] == "started"

        # Then Lambda's retry, at its own spacing after the kill (scaled) and whatever the lease,
        # takes the date over and completes it exactly
        time.sleep(FIRST_RETRY_SECONDS)
        result = service_on(moto_endpoint, migrated_settings, tmp_path, **point.env).sync(
            sync_date, None, SyncOptions(invocation_id="next-run")
        )
        after = fingerprint(db)
        read_until(reader, after)

    table_before = {} if point.first_load else day_one_rows
    file_rows = expected_rows(file_table)
    assert table_rows(db) == {**table_before, **file_rows}
    assert_completed_exactly(db, moto_endpoint, sync_date, result, expected_counts(table_before, file_rows))
    assert result.claim_number == 2
    # And no reader ever saw anything but the day before or the day after
    assert reader.errors == 0
    assert_never_partial(reader, before, after)


# -- a server restart mid-publish ---------------------------------------------------------------


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
    (tmp_path / "interrupted").mkdir()
    interrupted = service_on(
        moto_endpoint,
        settings,
        tmp_path / "interrupted",
        sleep=time.sleep,
        CLAIM_LEASE_SECONDS=str(LEASE_SECONDS),
        TRANSIENT_RETRIES=str(TRANSIENT_RETRIES),
        TRANSIENT_WAIT_SECONDS=str(TRANSIENT_WAIT_SECONDS),
        STAGING_CHUNK_ROWS="1000",
    )

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
        assert_completed_exactly(checker, moto_endpoint, DAY_TWO, result, expected_counts(table_before, file_rows))
        assert result.claim_number == 1
        # And the reader, through the restart, saw only the day before or the day after
        assert reader.errors > 0, "the reader never noticed the server go"
        assert_never_partial(reader, before, after)
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
            assert_completed_exactly(checker, moto_endpoint, DAY_TWO, next_run, counts)
        # And the reader, through the restart, saw only the day before or the day after
        assert reader.errors > 0, "the reader never noticed the server go"
        assert_never_partial(reader, before, after)
    finally:
        checker.close()
