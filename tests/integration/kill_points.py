"""The kill matrix's kill points, and what a test needs around them: found from outside, checked after.

A sync under test runs somewhere the test can only watch and kill: `scripts/invoke` in a process
of its own (tests/integration/test_kill_matrix.py) or the deployed artifact in a local Lambda's
execution environment (tests/e2e/test_kill_matrix_on_lambda.py). Each kill point finds its step
boundary from outside that process (a file in its work directory, the staging progress, or the
statement the server runs for it, from information_schema.processlist) and kills it (SIGKILL).
Nothing in the product knows it is being killed.

Afterwards the next run must leave the table equal to the file's rows (computed independently,
`expected_rows`) and the metadata `completed` with exact counts, while a reader polling the
table on its own connection sees nothing but the day before or the day after.
"""

from __future__ import annotations

import datetime as dt
import functools
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import boto3
import pyarrow as pa
import pymysql

from functions.ingest.columns import COLUMN_NAMES
from functions.ingest.work_space import WORK_FILE_PREFIX
from functions.shared.contract import object_key_for
from functions.shared.db import connect
from functions.shared.settings import DatabaseSettings
from tests.factories import snowflake_table
from tests.integration.conftest import PREFIX, chunks_committed, expected_rows, query, uncommitted_table_rows, wait_for

# Generous: the machine may be shared and slow; a kill point is usually reached in seconds.
STEP_TIMEOUT_SECONDS = 120
# A killed client's session ends when the server reads its closed socket, and at the latest when
# the server's idle timeout (DB_IDLE_TIMEOUT_SECONDS, 120 s by default) ends a silent session: the
# wait for its rollback allows for the latter on a loaded machine.
ROLLBACK_TIMEOUT_SECONDS = 180
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


def etag_of(endpoint: str, bucket: str, sync_date: dt.date) -> str:
    head = boto3.client("s3", endpoint_url=endpoint).head_object(Bucket=bucket, Key=object_key_for(PREFIX, sync_date))
    return str(head["ETag"]).strip('"')


def assert_completed_exactly(
    db: pymysql.Connection[Any], etag: str, sync_date: dt.date, answer: Mapping[str, Any], counts: dict[str, int]
) -> None:
    """The run answered `completed` with `counts` (`answer`: what the handler returns), and the ledger agrees for `etag`."""
    assert answer["status"] == "completed", answer
    assert {name: answer[name] for name in counts} == counts
    row = metadata_of(db, sync_date)
    assert (row["status"], row["completed_etag"], row["lease_expires_at"]) == ("completed", etag, None)
    assert {name: row[name] for name in counts} == counts


# -- what runs the sync, seen from outside ------------------------------------------------------


class Worker(Protocol):
    """The process running the sync under test, as the test sees it from outside."""

    def work_dir(self) -> Path:
        """Where the sync writes its download and load files (Lambda's /tmp)."""
        ...

    def running(self) -> bool:
        """True while the sync runs; fails the test at once if it ended before its kill point."""
        ...

    def stop(self) -> None:
        """SIGSTOP: hold it where it is while the test looks (a test's device, not a fault)."""
        ...

    def kill(self) -> None:
        """SIGKILL, and wait until it is gone."""
        ...


@dataclass(frozen=True)
class ProcessWorker:
    """`scripts/invoke ingest` in a process of its own."""

    process: subprocess.Popen[bytes]
    directory: Path

    def work_dir(self) -> Path:
        return self.directory

    def running(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the sync ended (exit code {self.process.returncode}) before reaching its kill point")
        return True

    def stop(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=60)


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
    worker: Worker | None = None,
) -> int:
    """Wait until a connection runs a statement like `pattern` while `ready()`; its id."""
    found: list[int] = []

    def seen() -> bool:
        connection_id = running(db, settings, pattern)
        if connection_id is not None and ready():
            found.append(connection_id)
        elif worker is not None:
            worker.running()
        return bool(found)

    wait_for(seen, STEP_TIMEOUT_SECONDS, f"a statement like {pattern!r}")
    return found[0]


def progress_of(db: pymysql.Connection[Any], sync_date: dt.date) -> dict[str, Any]:
    rows = query(db, "SELECT * FROM upsell_signal_staging_progress WHERE sync_date = %s", (sync_date,))
    return rows[0] if rows else {"rows_read": 0, "chunks_committed": 0, "staging_complete": 0}


# information_schema.innodb_trx is not live: InnoDB serves it (and innodb_locks, innodb_lock_waits) from a
# cache that it refreshes only when nobody has read the cache for 0.1 s (CACHE_MIN_IDLE_TIME_NS, checked by
# can_cache_be_updated in storage/innobase/trx/trx0i_s.cc; every read sets the cache's last_read). Read every
# few milliseconds, as wait_for polls, it shows the snapshot of the first read for as long as the polling
# lasts: a transaction that ended long ago, mid-statement. Each read here waits longer than that first.
INNODB_TRX_CACHE_IDLE_SECONDS = 0.1


def transactions_of(db: pymysql.Connection[Any], connection_id: int, columns: str = "trx_id") -> list[dict[str, Any]]:
    """The InnoDB transaction of connection `connection_id` as it is now (not a cached snapshot of earlier)."""
    time.sleep(2 * INNODB_TRX_CACHE_IDLE_SECONDS)  # unread for longer than the cache's idle time: the read refreshes it
    return query(db, f"SELECT {columns} FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = %s", (connection_id,))


def gone_from_the_server(db: pymysql.Connection[Any], connection_id: int) -> bool:
    """The killed client's session has ended server-side (its transaction rolled back)."""
    return not query(db, "SELECT 1 FROM information_schema.processlist WHERE id = %s", (connection_id,)) and not transactions_of(
        db, connection_id
    )


def wait_until_gone(db: pymysql.Connection[Any], connection_id: int, timeout_seconds: float, what: str) -> None:
    """Wait for a killed client's session to end server-side; on a timeout, say what the server shows of it."""
    try:
        wait_for(lambda: gone_from_the_server(db, connection_id), timeout_seconds, what)
    except AssertionError as timed_out:
        session = query(
            db,
            "SELECT command, state, time, LEFT(info, 120) AS info FROM information_schema.processlist WHERE id = %s",
            (connection_id,),
        )
        transaction = transactions_of(
            db,
            connection_id,
            "trx_state, trx_started, trx_operation_state, trx_rows_modified, trx_lock_structs, LEFT(trx_query, 120) AS query",
        )
        sessions = query(db, "SELECT id, command, state, time, LEFT(info, 80) AS info FROM information_schema.processlist")
        [innodb] = query(db, "SHOW ENGINE INNODB STATUS")
        raise AssertionError(
            f"{timed_out}: session {connection_id}: {session}; its transaction: {transaction}; sessions: {sessions}; "
            f"InnoDB: {innodb['Status']}"
        ) from None


@dataclass(frozen=True)
class Victim:
    """The process to kill, and what the test knows about its sync."""

    worker: Worker
    db: pymysql.Connection[Any]
    settings: DatabaseSettings
    sync_date: dt.date
    file_rows: int
    rows_after: int  # rows in the table once the date is published
    rows_before: int  # rows in the table before


def kill_after_download(victim: Victim) -> None:
    """The verified file is renamed into place in the work directory: stop the process there, look, kill."""
    downloads = f"{WORK_FILE_PREFIX}{victim.sync_date}-*"
    wait_for(
        lambda: victim.worker.running() and any(victim.worker.work_dir().glob(f"{downloads}.parquet")),
        STEP_TIMEOUT_SECONDS,
        "the verified download",
    )
    victim.worker.stop()
    assert not list(victim.worker.work_dir().glob(f"{downloads}.part"))  # renamed into place: complete and verified
    assert progress_of(victim.db, victim.sync_date)["chunks_committed"] <= 1, "stopped well after the download"
    victim.worker.kill()


def kill_mid_staging(victim: Victim) -> None:
    wait_for(
        lambda: victim.worker.running() and chunks_committed(victim.db, victim.sync_date) >= 3,
        STEP_TIMEOUT_SECONDS,
        "three committed chunks",
    )
    victim.worker.kill()
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
    victim.worker.kill()
    assert not progress_of(victim.db, victim.sync_date)["staging_complete"], "caught only the last chunk's listing"
    wait_until_gone(victim.db, lister, STEP_TIMEOUT_SECONDS, "the listing session's end")


def killing_during(pattern: str) -> Callable[[Victim], None]:
    """Kill the process while the server runs one of its publish statements (`pattern`)."""

    def kill_mid_statement(victim: Victim) -> None:
        publisher = wait_for_statement(victim.db, victim.settings, pattern, lambda: True, victim.worker)
        victim.worker.kill()
        # The server finishes or aborts the statement, then rolls the transaction back.
        wait_until_gone(victim.db, publisher, ROLLBACK_TIMEOUT_SECONDS, "the publisher's rollback")

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
    victim.worker.stop()

    def idle() -> bool:
        [session] = query(db, "SELECT command FROM information_schema.processlist WHERE id = %s", (publisher,))
        return bool(session["command"] == "Sleep")

    # The processlist is live; the session's transaction is read once it is idle (see transactions_of).
    wait_for(idle, STEP_TIMEOUT_SECONDS, "the last publish statement's end")
    if not transactions_of(db, publisher):
        raise AssertionError("the publish committed before the client was stopped: the kill point passed")
    assert uncommitted_table_rows(victim.settings) == victim.rows_after  # every row written...
    assert metadata_of(db, victim.sync_date)["status"] == "started"  # ...and nothing committed
    victim.worker.kill()
    wait_until_gone(db, publisher, ROLLBACK_TIMEOUT_SECONDS, "the publisher's rollback")
    # ...and rolled back: even a read of uncommitted rows finds the day before again.
    assert uncommitted_table_rows(victim.settings) == victim.rows_before


@dataclass(frozen=True)
class KillPoint:
    name: str
    kill: Callable[[Victim], None]
    first_load: bool = False  # the killed sync loads an empty table; else day one is published first
    rows: int = 10_000
    day_two_shape: dict[str, Any] = field(default_factory=dict)  # tests.factories.day_two's knobs
    env: dict[str, str] = field(default_factory=dict)  # settings of both runs


DOUBLED_ROW_COUNT = {"GUARD_MAX_ROW_COUNT_DRIFT": "1"}

AFTER_DOWNLOAD = KillPoint("after download", kill_after_download)
MID_STAGING = KillPoint("mid-staging", kill_mid_staging)
# Listing a chunk takes milliseconds: twenty chunks of rows that all differ (only those are
# staged and listed) give the poll enough of them to catch.
DURING_LISTING = KillPoint("during listing", kill_while_listing, rows=20_000, day_two_shape={"model_run_everywhere": True})
# Every row's MODEL_UPDATED_AT is the model's run time: the UPDATE touches them all.
MID_PUBLISH_UPDATE = KillPoint(
    "mid-publish update", killing_during("UPDATE %company_upsell_signals%SET%"), day_two_shape={"model_run_everywhere": True}
)
# As many new keys as the day before had: the INSERT of new keys is the long statement
# (the row count doubles, so the drift guard is opened for both runs).
MID_PUBLISH_INSERT = KillPoint(
    "mid-publish insert",
    killing_during("INSERT INTO company_upsell_signals %SELECT%"),
    day_two_shape={"new": 1.0},
    env=DOUBLED_ROW_COUNT,
)
MID_PUBLISH_FIRST_LOAD = KillPoint(
    "mid-publish first load", killing_during("LOAD DATA %INTO TABLE company_upsell_signals %"), first_load=True
)
AFTER_PUBLISH_BEFORE_COMMIT = KillPoint(
    "after publish before commit", kill_after_publish_before_commit, day_two_shape={"new": 1.0}, env=DOUBLED_ROW_COUNT
)
# The matrix, in full: every test module that runs it lists these in a literal list of its own
# (tests/unit/test_docs.py counts the cases from the list), and checks it against this one.
MATRIX = (
    AFTER_DOWNLOAD,
    MID_STAGING,
    DURING_LISTING,
    MID_PUBLISH_UPDATE,
    MID_PUBLISH_INSERT,
    MID_PUBLISH_FIRST_LOAD,
    AFTER_PUBLISH_BEFORE_COMMIT,
)


@functools.cache
def day_one(rows: int) -> tuple[pa.Table, dict[str, dict[str, Any]]]:
    """The day before's file and its expected rows (computed once: the latter takes seconds)."""
    table = snowflake_table(rows, seed=301)
    return table, expected_rows(table)
