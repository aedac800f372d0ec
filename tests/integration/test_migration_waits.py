"""A migration meets real holders of the tables: a publish, a reader's open transaction, a kill mid-version.

Each holder is a real session on the test server (the ingest's own publish lock and transaction,
an open transaction of a reader), and the kill is a real SIGKILL of `scripts/invoke migrate`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pymysql
import pytest

from functions.ingest.repository import Repository
from functions.migrate import handler as migrate_handler
from functions.migrate.files import MIGRATIONS_DIR, discover_migrations
from functions.migrate.migrator import MigrationReport, Migrator
from functions.migrate.waits import MigrationWaits
from functions.shared.db import connect
from functions.shared.errors import MigrationWaitExceeded
from functions.shared.settings import DatabaseSettings
from tests.integration.conftest import REPO_ROOT, query, wait_for
from tests.scripts_support import LocalContext

NEW_COLUMN = "lineage_sync_date"


@pytest.fixture
def with_a_pending_signals_change(migrated_settings: DatabaseSettings, tmp_path: Path) -> Path:
    """migrations/ plus a next version that alters the signals table, as the lineage columns will."""
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    version = discover_migrations()[-1].version + 1
    (directory / f"{version:04d}_signals_lineage.up.sql").write_text(
        f"ALTER TABLE company_upsell_signals ADD COLUMN IF NOT EXISTS {NEW_COLUMN} DATE NULL;\n"
    )
    (directory / f"{version:04d}_signals_lineage.down.sql").write_text(
        f"ALTER TABLE company_upsell_signals DROP COLUMN IF EXISTS {NEW_COLUMN};\n"
    )
    return directory


def has_new_column(connection: pymysql.Connection[Any]) -> bool:
    rows = query(
        connection,
        "SELECT 1 FROM information_schema.columns WHERE table_schema = DATABASE() "
        "AND table_name = 'company_upsell_signals' AND column_name = %s",
        (NEW_COLUMN,),
    )
    return bool(rows)


class PublishInProgress:
    """The ingest's publish, held open: its named lock and a transaction that wrote the signals table."""

    def __init__(self, settings: DatabaseSettings) -> None:
        self._settings = settings
        self._holding = threading.Event()
        self._finish = threading.Event()
        self._thread = threading.Thread(target=self._publish, name="publish")
        self.error: BaseException | None = None

    def _publish(self) -> None:
        try:
            with (
                closing(Repository(connect(self._settings))) as repository,
                repository.signals.publish_lock(30),
                repository.transaction("publish"),
            ):
                repository.session.execute(
                    "INSERT INTO company_upsell_signals (cdms_canonical_company_id) VALUES ('published-meanwhile')"
                )
                self._holding.set()
                self._finish.wait(60)
        except BaseException as error:  # handed to the test
            self.error = error
            self._holding.set()

    def __enter__(self) -> PublishInProgress:
        self._thread.start()
        assert self._holding.wait(10) and self.error is None, self.error
        return self

    def finish(self) -> None:
        self._finish.set()
        self._thread.join(30)

    def __exit__(self, *_exc: object) -> None:
        self.finish()


def up_in_a_thread(settings: DatabaseSettings, directory: Path, waits: MigrationWaits, outcome: dict[str, Any]) -> threading.Thread:
    def run() -> None:
        connection = connect(settings)
        started = time.monotonic()
        try:
            outcome["report"] = Migrator(connection, discover_migrations(directory), waits).up()
        except BaseException as error:  # handed to the test
            outcome["error"] = error
        finally:
            outcome["seconds"] = time.monotonic() - started
            connection.close()

    thread = threading.Thread(target=run, name="migrate")
    thread.start()
    return thread


def test_a_migration_started_during_a_publish_waits_for_it_then_applies(
    migrated_settings: DatabaseSettings, with_a_pending_signals_change: Path, db: pymysql.Connection[Any]
) -> None:
    # Given a publish holding the signals table (its lock, an uncommitted write)
    outcome: dict[str, Any] = {}
    with PublishInProgress(migrated_settings) as publish:
        # When a migration that alters the table starts
        migration = up_in_a_thread(migrated_settings, with_a_pending_signals_change, MigrationWaits(), outcome)
        time.sleep(2)
        # Then it has not touched the table while the publish runs
        assert migration.is_alive() and not has_new_column(db)
        publish.finish()
        migration.join(30)
        assert publish.error is None
    # And once the publish committed, it applied its version, after a wait within its bound
    report: MigrationReport = outcome["report"]
    assert report.applied == [discover_migrations(with_a_pending_signals_change)[-1].version]
    assert has_new_column(db)
    assert 1.5 <= outcome["seconds"] < MigrationWaits().publish_lock_seconds
    assert query(db, "SELECT cdms_canonical_company_id FROM company_upsell_signals") == [
        {"cdms_canonical_company_id": "published-meanwhile"}
    ]


def test_a_migration_gives_up_plainly_when_a_publish_outlasts_its_bound(
    migrated_settings: DatabaseSettings, with_a_pending_signals_change: Path, db: pymysql.Connection[Any]
) -> None:
    # Given a publish that holds the signals table longer than the migration may wait
    waits = MigrationWaits(publish_lock_seconds=2)
    outcome: dict[str, Any] = {}
    with PublishInProgress(migrated_settings) as publish:
        # When the migration runs
        up_in_a_thread(migrated_settings, with_a_pending_signals_change, waits, outcome).join(30)
        publish.finish()
    # Then it fails within its bound, naming the publish, and changed nothing; the publish committed
    assert isinstance(outcome.get("error"), MigrationWaitExceeded), outcome
    assert "a publish of the ingest held lock 'company_upsell_signals_publish' for more than 2s" in str(outcome["error"])
    assert 2 <= outcome["seconds"] < 5
    assert not has_new_column(db)
    assert publish.error is None
    assert len(query(db, "SELECT id FROM company_upsell_signals")) == 1


def test_a_migration_behind_a_readers_open_transaction_gives_up_within_its_bound_and_readers_go_on(
    migrated_settings: DatabaseSettings, with_a_pending_signals_change: Path, db: pymysql.Connection[Any]
) -> None:
    # Given a reader (no publish lock) whose open transaction read the signals table: a metadata lock
    reader = connect(migrated_settings)
    reader.begin()
    query(reader, "SELECT COUNT(*) FROM company_upsell_signals")
    waits = MigrationWaits(statement_lock_wait_seconds=1, statement_attempts=2, retry_backoff_seconds=0.5)
    outcome: dict[str, Any] = {}
    try:
        # When the migration's ALTER TABLE queues behind it
        migration = up_in_a_thread(migrated_settings, with_a_pending_signals_change, waits, outcome)
        migration.join(30)
    finally:
        reader.rollback()
        reader.close()
    # Then it gives up after its two bounded tries (not the server's default of a day), naming the file
    assert isinstance(outcome.get("error"), MigrationWaitExceeded), outcome
    assert "_signals_lineage.up.sql, statement 1: waited 1s for a lock 2 time(s)" in str(outcome["error"])
    assert 2.5 <= outcome["seconds"] < 8
    # And the version stays pending and applies once the reader is gone
    assert not has_new_column(db)
    connection = connect(migrated_settings)
    assert Migrator(connection, discover_migrations(with_a_pending_signals_change), waits).up().applied != []
    connection.close()
    assert has_new_column(db)


@pytest.fixture
def one_version_back(migrated_settings: DatabaseSettings) -> Iterator[int]:
    """A database at the version before the newest, whose schema_migrations the test can lock."""
    connection = connect(migrated_settings)
    newest = discover_migrations()[-1].version
    Migrator(connection, discover_migrations()).down(newest - 1)
    connection.close()
    yield newest


def test_a_migration_killed_between_its_ddl_and_its_record_completes_on_the_next_run(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any]
) -> None:
    # Given a database before 0010 (it adds upsell_signal_staging_progress.rows_in_file)
    connection = connect(migrated_settings)
    Migrator(connection, discover_migrations()).down(9)
    connection.close()
    # And a transaction holding schema_migrations' next-key lock, so the record of 0010 waits
    holder = connect(migrated_settings)
    holder.begin()
    query(holder, "SELECT version FROM schema_migrations FOR UPDATE")
    # When `scripts/invoke migrate` runs the newest version's DDL and is killed while its record waits
    worker = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "scripts" / "invoke"), "migrate", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, DB_NAME=migrated_settings.name),
    )
    assert worker.stdin is not None
    worker.stdin.write(b"{}")
    worker.stdin.close()
    try:

        def record_waiting() -> list[dict[str, Any]]:
            return query(
                db,
                "SELECT id FROM information_schema.processlist WHERE db = DATABASE() AND info LIKE 'INSERT INTO schema_migrations%%'",
            )

        wait_for(lambda: bool(record_waiting()), 30, "the migrator's record to wait on the lock")
        session_id = record_waiting()[0]["id"]
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        # (Lambda's kill closes the socket; the server ends the session once it notices: here, at once.)
        query(db, f"KILL {int(session_id)}")
    finally:
        if worker.poll() is None:
            worker.kill()
        holder.rollback()
        holder.close()
    # Then the DDL is done but the version is not recorded: the state a kill leaves
    assert 10 not in [row["version"] for row in query(db, "SELECT version FROM schema_migrations")]
    assert query(
        db,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() "
        "AND table_name = 'upsell_signal_staging_progress' AND column_name = 'rows_in_file'",
    )
    # And the next run applies 0010 again and records it, without "Duplicate column"
    connection = connect(migrated_settings)
    report = Migrator(connection, discover_migrations()).up()
    connection.close()
    assert report.applied[0] == 10
    assert query(db, "SELECT COUNT(*) AS n FROM schema_migrations WHERE version = 10") == [{"n": 1}]


def test_the_migrate_function_gives_up_before_its_timeout(migrated_settings: DatabaseSettings, one_version_back: int) -> None:
    # Given a publish that holds the table, and the migrate function invoked with 25 s to live
    context = LocalContext("migrate", timeout_seconds=25)
    started = time.monotonic()
    with PublishInProgress(migrated_settings), pytest.raises(MigrationWaitExceeded) as gave_up:
        # When it runs the pending version
        migrate_handler.handler({"action": "up"}, context)
    # Then its wait for the publish lock was cut to the time left less the answer's margin (20 s)
    assert re.search(r"held lock 'company_upsell_signals_publish' for more than [45]s", str(gave_up.value))
    assert time.monotonic() - started < 8


def test_a_last_version_that_ends_past_the_deadline_is_reported_applied_and_the_account_provisioned(
    migrated_settings: DatabaseSettings, tmp_path: Path
) -> None:
    # Given a next version whose statement starts within the run's deadline and ends after it
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    (directory / "0099_slow.up.sql").write_text("DO SLEEP(2);\n")
    (directory / "0099_slow.down.sql").write_text("DO 0;\n")
    with closing(connect(migrated_settings)) as connection:
        migrator = Migrator(connection, discover_migrations(directory), MigrationWaits(deadline=time.monotonic() + 1.5))

        # When the run applies it and then provisions the ingest account, its deadline passed
        report = migrator.up()
        migrator.provision_ingest_user("upsell_ingest", "a-new-password-0099")

    # Then it reports the version applied rather than failing the deploy over what is done, and the account has its password
    assert (report.applied, report.pending) == ([99], [])
    ingest_login = connect(replace(migrated_settings, user="upsell_ingest", password="a-new-password-0099"))
    ingest_login.close()
