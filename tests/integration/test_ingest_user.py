"""The ingest account made by the migrations can run a whole sync and cannot change the schema."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace
from typing import Any

import pymysql
import pytest

from functions.ingest.s3_source import SignalObjectStore
from functions.ingest.service import SyncService
from functions.ingest.sync_values import SyncOptions
from functions.migrate.files import discover_migrations
from functions.migrate.migrator import Migrator
from functions.shared.db import connect
from functions.shared.settings import DatabaseSettings, load_ingest_settings
from tests.factories import snowflake_table
from tests.integration.conftest import BUCKET, expected_rows, ingest_env, table_rows


def test_the_ingest_account_syncs_a_file_but_cannot_alter_or_drop_the_signals_table(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], s3_client: Any, upload: Any, tmp_path: Any
) -> None:
    # Given the ingest account provisioned with a password, as the migrate function does in AWS
    password = uuid.uuid4().hex
    admin = connect(migrated_settings)
    Migrator(admin, discover_migrations()).provision_ingest_user("upsell_ingest", password)
    admin.close()
    ingest_account = replace(migrated_settings, user="upsell_ingest", password=password)
    table = snowflake_table(2_000, seed=3)
    upload(dt.date(2026, 1, 30), table)

    # When a sync runs with only that account's rights
    service = SyncService(
        load_ingest_settings(ingest_env(WORK_DIR=str(tmp_path))),
        lambda: connect(ingest_account, local_infile=True),
        SignalObjectStore(s3_client, BUCKET),
    )
    result = service.sync(dt.date(2026, 1, 30), None, SyncOptions(invocation_id="least-privilege"))

    # Then it completes, and the same account is refused any schema change on the signals table,
    # and, as it keeps missing rows (the default), any delete of its rows
    assert result.status == "completed" and table_rows(db) == expected_rows(table)
    limited = connect(ingest_account)
    for statement in (
        "DROP TABLE company_upsell_signals",
        "ALTER TABLE company_upsell_signals ADD COLUMN x INT",
        "TRUNCATE TABLE company_upsell_signals",
        "DELETE FROM schema_migrations",
        "DELETE FROM company_upsell_signals",
    ):
        with pytest.raises(pymysql.err.OperationalError) as refused:
            limited.cursor().execute(statement)
        assert refused.value.args[0] in (1142, 1044), statement
    limited.close()


def test_the_ingest_account_may_delete_signals_rows_only_where_the_ingest_deletes_missing_ones(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], s3_client: Any, upload: Any, tmp_path: Any
) -> None:
    # Given the ingest account provisioned for MISSING_ROWS=delete, and a day one published
    password = uuid.uuid4().hex
    admin = connect(migrated_settings)
    migrator = Migrator(admin, discover_migrations())
    migrator.provision_ingest_user("upsell_ingest", password, may_delete=True)
    ingest_account = replace(migrated_settings, user="upsell_ingest", password=password)
    day_one = snowflake_table(1_000, seed=4)
    upload(dt.date(2026, 1, 30), day_one)
    upload(dt.date(2026, 1, 31), day_one.slice(0, 950))
    service = SyncService(
        load_ingest_settings(ingest_env(WORK_DIR=str(tmp_path), MISSING_ROWS="delete")),
        lambda: connect(ingest_account, local_infile=True),
        SignalObjectStore(s3_client, BUCKET),
    )
    assert service.sync(dt.date(2026, 1, 30), None, SyncOptions(invocation_id="one")).status == "completed"

    # When day two lacks 50 companies, synced with only that account's rights
    result = service.sync(dt.date(2026, 1, 31), None, SyncOptions(invocation_id="two"))

    # Then it deletes them
    assert (result.status, result.rows_deleted) == ("completed", 50)
    assert table_rows(db) == expected_rows(day_one.slice(0, 950))
    # And provisioned again for keep mode (a deploy that sets missingRows back), the account may not
    # delete, however often it is provisioned
    migrator.provision_ingest_user("upsell_ingest", password)
    migrator.provision_ingest_user("upsell_ingest", password)
    admin.close()
    limited = connect(ingest_account)
    with pytest.raises(pymysql.err.OperationalError) as refused:
        limited.cursor().execute("DELETE FROM company_upsell_signals LIMIT 1")
    limited.close()
    assert refused.value.args[0] == 1142
