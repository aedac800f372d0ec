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
from functions.migrate.migrator import Migrator, discover_migrations
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

    # Then it completes, and the same account is refused any schema change on the signals table
    assert result.status == "completed" and table_rows(db) == expected_rows(table)
    limited = connect(ingest_account)
    for statement in (
        "DROP TABLE company_upsell_signals",
        "ALTER TABLE company_upsell_signals ADD COLUMN x INT",
        "TRUNCATE TABLE company_upsell_signals",
        "DELETE FROM schema_migrations",
    ):
        with pytest.raises(pymysql.err.OperationalError) as refused:
            limited.cursor().execute(statement)
        assert refused.value.args[0] in (1142, 1044), statement
    limited.close()
