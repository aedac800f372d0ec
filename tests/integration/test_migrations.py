"""Migrations against a real MariaDB: round trip, concurrency, edited files."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pymysql
import pytest

from functions.migrate.files import MIGRATIONS_DIR, discover_migrations, split_statements
from functions.migrate.migrator import MigrationReport, Migrator
from functions.migrate.revisions import EQUIVALENT_EARLIER_CHECKSUMS
from functions.shared.db import connect
from functions.shared.errors import MigrationError
from functions.shared.settings import DatabaseSettings

ALL_VERSIONS = [m.version for m in discover_migrations()]


def schema_snapshot(connection: pymysql.Connection[Any]) -> dict[str, str]:
    """SHOW CREATE TABLE of every table but the migrator's ledger, AUTO_INCREMENT counters removed."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW TABLES")
        tables = sorted(row[0] for row in cursor.fetchall())
        snapshot = {}
        for table in tables:
            if table == "schema_migrations":
                continue
            cursor.execute(f"SHOW CREATE TABLE `{table}`")
            snapshot[table] = " ".join(part for part in cursor.fetchone()[1].split() if not part.startswith("AUTO_INCREMENT="))
    return snapshot


def test_up_down_up_gives_identical_schema_and_no_leftovers(database_settings: DatabaseSettings) -> None:
    connection = connect(database_settings)
    migrator = Migrator(connection, discover_migrations())

    first = migrator.up()
    schema_after_first_up = schema_snapshot(connection)
    down = migrator.down(0)
    schema_after_down = schema_snapshot(connection)
    second = migrator.up()
    schema_after_second_up = schema_snapshot(connection)
    connection.close()

    assert first.applied == ALL_VERSIONS and first.pending == []
    assert "company_upsell_signals" in schema_after_first_up
    assert down.reverted == sorted(ALL_VERSIONS, reverse=True) and down.current_version == 0
    assert schema_after_down == {}
    assert second.applied == ALL_VERSIONS
    assert schema_after_second_up == schema_after_first_up


def run_file_as_a_killed_migrator_did(connection: pymysql.Connection[Any], path: Path) -> None:
    """Every statement of a file, and no record: what a migrator killed after its DDL leaves behind."""
    with connection.cursor() as cursor:
        for statement in split_statements(path.read_text()):
            cursor.execute(statement)
    connection.commit()


def test_every_version_up_and_down_can_be_run_again_after_a_kill_before_its_record(
    database_settings: DatabaseSettings,
) -> None:
    """The check every future migration meets in `make test`: each file is safe to run twice.

    MariaDB DDL is not transactional, so a kill between a version's DDL and its record leaves the
    DDL done and the version pending; the next run executes the file again.
    """
    migrations = discover_migrations()
    connection = connect(database_settings)
    Migrator(connection, migrations).up()
    clean_schema = schema_snapshot(connection)
    Migrator(connection, migrations).down(0)

    # Given each version's up run once without its record, When the migrator runs again, Then it completes
    for index, migration in enumerate(migrations):
        run_file_as_a_killed_migrator_did(connection, migration.up_path)
        try:
            report = Migrator(connection, migrations[: index + 1]).up()
        except pymysql.err.MySQLError as error:
            pytest.fail(f"{migration.up_path.name} cannot be run a second time: {error}")
        assert report.applied == [migration.version]
    schema_after_reruns = schema_snapshot(connection)

    # And the same for each down, newest first
    for migration in reversed(migrations):
        run_file_as_a_killed_migrator_did(connection, migration.down_path)
        try:
            report = Migrator(connection, migrations).down(migration.version - 1)
        except pymysql.err.MySQLError as error:
            pytest.fail(f"{migration.down_path.name} cannot be run a second time: {error}")
        assert report.reverted == [migration.version]
    schema_after_down_reruns = schema_snapshot(connection)
    connection.close()

    assert schema_after_reruns == clean_schema
    assert schema_after_down_reruns == {}


def test_a_version_recorded_with_its_files_earlier_equivalent_checksum_is_not_refused(
    migrated_settings: DatabaseSettings,
) -> None:
    # Given a database that applied 0008 before its file gained IF NOT EXISTS (the old checksum recorded)
    earlier = next(iter(EQUIVALENT_EARLIER_CHECKSUMS[8]))
    connection = connect(migrated_settings)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE schema_migrations SET checksum = %s WHERE version = 8", (earlier,))
    connection.commit()
    # When the migrator runs
    report = Migrator(connection, discover_migrations()).up()
    # Then it goes on (nothing to apply), where any other checksum is refused as an edit
    with connection.cursor() as cursor:
        cursor.execute("UPDATE schema_migrations SET checksum = %s WHERE version = 8", ("0" * 64,))
    connection.commit()
    with pytest.raises(MigrationError, match="0008_claim_holder_token"):
        Migrator(connection, discover_migrations()).up()
    connection.close()
    assert report.applied == [] and report.pending == []


def test_down_to_a_target_reverts_only_newer_versions(database_settings: DatabaseSettings) -> None:
    connection = connect(database_settings)
    migrator = Migrator(connection, discover_migrations())
    migrator.up()

    report = migrator.down(1)
    tables = schema_snapshot(connection)
    connection.close()

    assert report.current_version == 1
    assert report.pending == ALL_VERSIONS[1:]
    assert list(tables) == ["company_upsell_signals"]


def test_signals_table_has_exactly_the_specified_columns_and_indexes(migrated_settings: DatabaseSettings) -> None:
    connection = connect(migrated_settings)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name, column_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND table_name = 'company_upsell_signals' ORDER BY ordinal_position"
        )
        columns = {name: column_type for name, column_type, _ in cursor.fetchall()}
        cursor.execute(
            "SELECT index_name, GROUP_CONCAT(column_name ORDER BY seq_in_index), MIN(non_unique) "
            "FROM information_schema.statistics WHERE table_schema = DATABASE() "
            "AND table_name = 'company_upsell_signals' GROUP BY index_name"
        )
        indexes = {name: (cols, int(non_unique)) for name, cols, non_unique in cursor.fetchall()}
    connection.close()

    assert len(columns) == 31
    assert columns["id"] == "bigint(20) unsigned"
    assert columns["ee_growth_rate"] == "decimal(10,4)"
    assert columns["is_active_customer"] == "tinyint(1)"
    assert columns["last_hi_app_started_at"] == "timestamp"
    assert indexes == {
        "PRIMARY": ("id", 0),
        "idx_cdms_company_id": ("cdms_canonical_company_id", 0),
        "idx_legacy_company": ("legacy_company_id", 1),
        "idx_core_product": ("core_product", 1),
        "idx_model_updated": ("model_updated_at", 1),
    }


def test_two_migrators_started_together_apply_each_version_once(database_settings: DatabaseSettings) -> None:
    start_together = threading.Barrier(2)
    reports: list[MigrationReport] = []
    errors: list[BaseException] = []

    def migrate() -> None:
        connection = connect(database_settings)
        try:
            migrator = Migrator(connection, discover_migrations())
            start_together.wait()
            reports.append(migrator.up())
        except BaseException as error:  # collected and asserted below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=migrate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    applied_by_each = sorted((report.applied for report in reports), key=len)
    assert applied_by_each == [[], ALL_VERSIONS]
    connection = connect(database_settings)
    with connection.cursor() as cursor:
        cursor.execute("SELECT version, COUNT(*) FROM schema_migrations GROUP BY version")
        assert dict(cursor.fetchall()) == dict.fromkeys(ALL_VERSIONS, 1)
    connection.close()


@pytest.mark.parametrize("direction", ["up", "down"])
def test_an_edited_applied_file_of_either_direction_is_refused_by_name(
    database_settings: DatabaseSettings, tmp_path: Path, direction: str
) -> None:
    # Given every version applied from a copy of migrations/
    migrations_copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, migrations_copy)
    connection = connect(database_settings)
    Migrator(connection, discover_migrations(migrations_copy)).up()
    # When one applied version's up or down file is edited (a down file is run by the next rollback)
    edited = migrations_copy / f"0002_create_upsell_signal_sync_metadata.{direction}.sql"
    edited.write_text(edited.read_text() + "\n-- a harmless-looking edit\n")

    # Then the next run refuses it, naming the file
    with pytest.raises(MigrationError, match=rf"0002_create_upsell_signal_sync_metadata\.{direction}\.sql") as refused:
        Migrator(connection, discover_migrations(migrations_copy)).up()
    connection.close()
    assert "edited" in str(refused.value)


def test_a_version_without_its_down_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_first.up.sql").write_text("CREATE TABLE t (id INT);")

    with pytest.raises(MigrationError, match="0001 has no down file"):
        discover_migrations(tmp_path)
