"""The migrations, the provisioning, the ingest and the status report on a server set up as RDS sets one up.

The suite's own server runs everything as root, keeps no binary log and defaults to utf8mb4. RDS for MariaDB
differs in three ways a deployment meets on its first day:
- the migrate function connects as the master account, which holds a fixed list of privileges (no SUPER, no
  FILE; "Master user account privileges", RDS User Guide, UsingWithRDS.MasterAccounts);
- the binary log is on whenever automated backups are kept, in the mixed format by default ("Configuring MariaDB
  binary logging", RDS User Guide); config.py requires at least one day of backups, so it is always on;
- the database CloudFormation creates (DBName), or one an imported stack is given, takes the server's default
  character set, which this stack's parameter group does not set (the engine's own default is latin1).
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pymysql
import pytest

from functions.ingest.actions import StatusRequest
from functions.ingest.s3_source import SignalObjectStore
from functions.ingest.service import SyncService
from functions.ingest.sync_values import SyncOptions, SyncResult
from functions.migrate.files import discover_migrations
from functions.migrate.migrator import Migrator
from functions.shared.db import connect
from functions.shared.settings import DatabaseSettings, load_ingest_settings
from functions.status.report import build_status
from tests.factories import day_two, snowflake_table
from tests.integration.conftest import BUCKET, DAY_ONE, DAY_TWO, expected_rows, ingest_env, table_rows
from tests.integration.dedicated_server import DedicatedServer

DAY_THREE = DAY_TWO + dt.timedelta(days=1)

# The RDS for MariaDB master account's privileges, as the RDS User Guide lists them (on *.*, with grant option).
RDS_MASTER_PRIVILEGES = (
    "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, RELOAD, PROCESS, REFERENCES, INDEX, ALTER, SHOW DATABASES, "
    "CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, REPLICATION CLIENT, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, "
    "ALTER ROUTINE, CREATE USER, EVENT, TRIGGER, REPLICATION SLAVE"
)
# The engine's defaults but for what RDS turns on: the binary log (mixed), and local_infile, which this stack's
# parameter group sets. No character set is set, so a database created without one defaults to latin1.
RDS_LIKE_OPTIONS = (
    "--log-bin=binlog",
    "--binlog-format=MIXED",
    "--server-id=1",
    "--innodb-buffer-pool-size=128M",
    "--innodb-log-file-size=64M",
)
# Four-byte and non-Latin characters, which a latin1 column would refuse or mangle.
NON_LATIN_TIER = "成長-🚀-ünïcødé"


@pytest.fixture
def rds_like_master(server_settings: DatabaseSettings) -> Iterator[DatabaseSettings]:
    """A server set as RDS sets one, a database created as CloudFormation creates it, and its master account."""
    base = Path(tempfile.mkdtemp(prefix="rds-mariadb-"))  # short: the socket path has a length limit
    server = DedicatedServer(base, options=RDS_LIKE_OPTIONS)
    try:
        server.start()
        root = replace(server_settings, host="127.0.0.1", port=server.port, user="root", password="", name="upsell")
        master = replace(root, user="admin", password=uuid.uuid4().hex)
        connection = connect(root, database="")
        try:
            with connection.cursor() as cursor:
                cursor.execute("CREATE DATABASE upsell")  # DBName: no character set named
                cursor.execute("CREATE USER 'admin'@'%%' IDENTIFIED BY %s", (master.password,))
                cursor.execute(f"GRANT {RDS_MASTER_PRIVILEGES} ON *.* TO 'admin'@'%' WITH GRANT OPTION")
        finally:
            connection.close()
        yield master
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def _with_non_latin_tiers(table: pa.Table, every: int) -> pa.Table:
    """The table with every `every`-th row's current tier in characters latin1 lacks."""
    index = table.schema.get_field_index("CURRENT_PRODUCT_TIER")
    marked = pc.equal(pc.bit_wise_and(pa.array(range(table.num_rows), pa.int64()), every - 1), 0)
    return table.set_column(index, "CURRENT_PRODUCT_TIER", pc.if_else(marked, NON_LATIN_TIER, table["CURRENT_PRODUCT_TIER"]))


def _server_state(master: DatabaseSettings) -> dict[str, Any]:
    connection = connect(master)
    try:
        with connection.cursor(pymysql.cursors.DictCursor) as cursor:
            cursor.execute(
                "SELECT @@log_bin AS log_bin, @@binlog_format AS binlog_format, @@character_set_database AS charset, "
                "(SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = \"'admin'@'%'\" "
                "AND PRIVILEGE_TYPE IN ('SUPER', 'FILE')) AS root_powers"
            )
            state = cursor.fetchone()
            assert state is not None
            return dict(state)
    finally:
        connection.close()


def test_migrations_provisioning_ingest_and_status_run_as_rds_master_with_binary_logging_on(
    rds_like_master: DatabaseSettings, s3_client: Any, upload: Any, tmp_path: Path
) -> None:
    # Given a server logging every change in the mixed format, a database defaulting to latin1, and a master
    # account without SUPER or FILE
    assert _server_state(rds_like_master) == {"log_bin": 1, "binlog_format": "MIXED", "charset": "latin1", "root_powers": 0}

    # When the migrate function's work runs as that account: every migration, then both accounts' passwords
    ingest_password, status_password = uuid.uuid4().hex, uuid.uuid4().hex
    connection = connect(rds_like_master)
    try:
        migrator = Migrator(connection, discover_migrations())
        applied = migrator.up()
        migrator.provision_ingest_user("upsell_ingest", ingest_password, may_delete=True)
        migrator.provision_status_user("upsell_status", status_password)
    finally:
        connection.close()
    assert applied.current_version == max(migration.version for migration in discover_migrations())

    # And the ingest syncs three days as its own account: a first load, day two with missing rows deleted
    # (both with LOAD DATA), and day three staged with INSERTs; one value of day one too long to keep
    ingest_account = replace(rds_like_master, user="upsell_ingest", password=ingest_password)
    day_one = _with_non_latin_tiers(snowflake_table(3_000, seed=41), every=8)
    too_long = day_one.set_column(
        day_one.schema.get_field_index("CORE_PRODUCT"),
        "CORE_PRODUCT",
        pc.if_else(pa.array([row == 0 for row in range(day_one.num_rows)]), "🚀" * 17, day_one["CORE_PRODUCT"]),
    )
    second = _with_non_latin_tiers(day_two(day_one, seed=42), every=4)
    third = day_two(day_one, seed=43, changed=0.2)
    # each date's file, what the table must hold after it (day one's first row is rejected), and how it stages
    files = {
        DAY_ONE: (too_long, day_one.slice(1), "local_infile"),
        DAY_TWO: (second, second, "local_infile"),
        DAY_THREE: (third, third, "insert"),
    }
    checker = connect(rds_like_master)
    checker.autocommit(True)
    results, held = {}, {}
    try:
        for sync_date, (table, _, method) in files.items():
            upload(sync_date, table)
            settings = load_ingest_settings(ingest_env(WORK_DIR=str(tmp_path), MISSING_ROWS="delete", STAGING_LOAD_METHOD=method))
            service = SyncService(
                settings, lambda: connect(ingest_account, local_infile=True), SignalObjectStore(s3_client, BUCKET)
            )
            results[sync_date] = service.sync(sync_date, None, SyncOptions(invocation_id=f"rds-{sync_date}"))
            held[sync_date] = table_rows(checker)
    finally:
        checker.close()

    # Then each date completed, and after each the table held its file exactly, non-Latin values intact
    assert {date: result.status for date, result in results.items()} == dict.fromkeys(files, "completed")
    day_one_result = results[DAY_ONE]
    assert isinstance(day_one_result, SyncResult) and day_one_result.rows_rejected == 1
    for sync_date, (_, expected, _) in files.items():
        assert held[sync_date] == expected_rows(expected), sync_date
        assert any(row["current_product_tier"] == NON_LATIN_TIER for row in held[sync_date].values()), sync_date

    # And the status account reports the three dates, with day one's rejected value as it was sent
    status_connection = connect(replace(rds_like_master, user="upsell_status", password=status_password))
    try:
        history = build_status(status_connection, StatusRequest(days=3660))
        day_one_report = build_status(status_connection, StatusRequest(sync_date=DAY_ONE))
    finally:
        status_connection.close()
    assert {row["sync_date"]: row["status"] for row in history["syncs"]} == {date.isoformat(): "completed" for date in files}
    assert day_one_report["rejects_total"] == 1 and "🚀" * 17 in str(day_one_report["rejects"][0])


def test_every_migration_reverts_as_rds_master_with_binary_logging_on(rds_like_master: DatabaseSettings) -> None:
    # Given every migration applied by the master account, and both accounts provisioned
    connection = connect(rds_like_master)
    try:
        migrator = Migrator(connection, discover_migrations())
        migrator.up()
        migrator.provision_ingest_user("upsell_ingest", uuid.uuid4().hex, may_delete=True)
        migrator.provision_status_user("upsell_status", uuid.uuid4().hex)

        # When every migration is reverted, then applied again (a down, then a redeploy)
        reverted = migrator.down(0)
        reapplied = migrator.up()
    finally:
        connection.close()

    # Then both succeed as that account: nothing was left behind that the second pass tripped on
    assert reverted.current_version == 0
    assert reapplied.current_version == max(migration.version for migration in discover_migrations())
