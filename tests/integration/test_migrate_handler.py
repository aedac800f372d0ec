"""The migrate function as the CDK provider framework (at deploy) and an operator call it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from functions.migrate import handler as migrate_handler
from functions.migrate.files import discover_migrations
from functions.migrate.fingerprint import MIGRATIONS_DIR, migrations_fingerprint
from functions.migrate.migrator import Migrator
from functions.shared.db import connect
from functions.shared.errors import BadEvent, MigrationError
from functions.shared.settings import DatabaseSettings
from tests.scripts_support import LocalContext

ALL_VERSIONS = [m.version for m in discover_migrations()]
STACK_ID = "arn:aws:cloudformation:eu-west-1:123456789012:stack/UpsellSignals-dev/5b6f1f50-11ef-9c3f"
# What this code's stack sends (infra/constructs/migrate.py), and what the deploy before it sent:
# the same migrations/ without the newest version.
OWN_FINGERPRINT = migrations_fingerprint()


def fingerprint_without_newest_version(tmp_path: Path) -> str:
    previous = tmp_path / "previous-migrations"
    if not previous.exists():
        shutil.copytree(MIGRATIONS_DIR, previous)
        for path in previous.glob(f"{ALL_VERSIONS[-1]:04d}_*.sql"):
            path.unlink()
    return migrations_fingerprint(previous)


def provider_request(request_type: str, *, fingerprint: str = OWN_FINGERPRINT, old_fingerprint: str = "older") -> dict[str, Any]:
    """A CloudFormation request as custom_resources.Provider's framework passes it to on_event.

    The framework invokes the handler synchronously (RequestResponse) with CloudFormation's event,
    pre-signed ResponseURL included; the handler must not use it: only the framework answers.
    """
    event: dict[str, Any] = {
        "RequestType": request_type,
        "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:UpsellSignals-dev-MigrationsProviderframeworkonEv",
        "ResponseURL": "https://cloudformation-custom-resource-response-euwest1.s3-eu-west-1.amazonaws.com/x?X-Amz-Signature=t",
        "StackId": STACK_ID,
        "RequestId": "d4a5e0f2-7c1b-4a0e-9d51-1e0f2a3b4c5d",
        "LogicalResourceId": "MigrationsSchema1A2B3C4D",
        "ResourceType": "Custom::SchemaMigrations",
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:UpsellSignals-dev-MigrationsProviderframeworkonEv",
            "MigrationsFingerprint": fingerprint,
            "IngestSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ingest-AbCdEf",
        },
    }
    if request_type != "Create":
        event["PhysicalResourceId"] = migrate_handler.PHYSICAL_RESOURCE_ID
    if request_type == "Update":
        event["OldResourceProperties"] = {**event["ResourceProperties"], "MigrationsFingerprint": old_fingerprint}
    return event


def table_names(settings: DatabaseSettings) -> set[str]:
    connection = connect(settings)
    with connection.cursor() as cursor:
        cursor.execute("SHOW TABLES")
        names = {row[0] for row in cursor.fetchall()}
    connection.close()
    return names


def test_create_applies_migrations_and_returns_the_physical_id_and_version(database_settings: DatabaseSettings) -> None:
    # Given an empty database
    # When the provider framework sends Create
    answer = migrate_handler.handler(provider_request("Create"), LocalContext("migrate"))
    # Then every version is applied and the answer is what the framework turns into SUCCESS
    assert answer == {
        "PhysicalResourceId": "upsell-signals-schema",
        "Data": {"CurrentVersion": str(ALL_VERSIONS[-1]), "Applied": ",".join(map(str, ALL_VERSIONS))},
    }
    assert "company_upsell_signals" in table_names(database_settings)


def test_update_applies_only_what_is_pending_and_keeps_the_physical_id(migrated_settings: DatabaseSettings) -> None:
    # Given a database at the newest version
    # When the provider framework sends Update (a new fingerprint or ingest secret)
    answer = migrate_handler.handler(provider_request("Update"), LocalContext("migrate"))
    # Then nothing is applied twice, and the same physical id means no replacement (no Delete follows)
    assert answer["PhysicalResourceId"] == "upsell-signals-schema"
    assert answer["Data"] == {"CurrentVersion": str(ALL_VERSIONS[-1]), "Applied": ""}


def schema_versions(settings: DatabaseSettings) -> list[int]:
    connection = connect(settings)
    with connection.cursor() as cursor:
        cursor.execute("SELECT version FROM schema_migrations ORDER BY version")
        versions = [row[0] for row in cursor.fetchall()]
    connection.close()
    return versions


def rollback_request(tmp_path: Path) -> dict[str, Any]:
    """The Update CloudFormation sends to roll this resource back after a failed stack update.

    ResourceProperties are the previous deploy's (the old fingerprint), OldResourceProperties the
    failed update's (this code's fingerprint); no field says "rollback" (AWS-FACTS.md).
    """
    return provider_request("Update", fingerprint=fingerprint_without_newest_version(tmp_path), old_fingerprint=OWN_FINGERPRINT)


def test_a_rollback_update_does_not_apply_the_new_version(
    database_settings: DatabaseSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a database at the previous deploy's version: the failed update had not migrated yet
    connection = connect(database_settings)
    Migrator(connection, discover_migrations()).up()
    Migrator(connection, discover_migrations()).down(ALL_VERSIONS[-2])
    connection.close()
    # When CloudFormation rolls the resource back while the function still runs the new code
    answer = migrate_handler.handler(rollback_request(tmp_path), LocalContext("migrate"))
    # Then the new version stays pending, and the answer and the log say why
    assert schema_versions(database_settings) == ALL_VERSIONS[:-1]
    assert answer["PhysicalResourceId"] == "upsell-signals-schema"
    assert answer["Data"]["Applied"] == ""
    assert answer["Data"]["Skipped"].startswith("a rollback: ")
    assert any(record.levelname == "WARNING" and "a rollback" in record.getMessage() for record in caplog.records)


def test_a_rollback_update_does_not_revert_a_version_already_applied(migrated_settings: DatabaseSettings, tmp_path: Path) -> None:
    # Given the failed update had applied the new version before another resource failed
    # When CloudFormation rolls the resource back
    answer = migrate_handler.handler(rollback_request(tmp_path), LocalContext("migrate"))
    # Then nothing is reverted either: the schema does not move in any direction
    assert schema_versions(migrated_settings) == ALL_VERSIONS
    assert answer["Data"]["Skipped"].startswith("a rollback: ")


def test_a_rollback_update_succeeds_without_reaching_the_database(
    database_settings: DatabaseSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a database the function cannot reach (a closed port on loopback)
    monkeypatch.setenv("DB_PORT", "1")
    monkeypatch.setenv("DB_CONNECT_TIMEOUT_SECONDS", "2")
    # When CloudFormation rolls the resource back
    answer = migrate_handler.handler(rollback_request(tmp_path), LocalContext("migrate"))
    # Then the rollback still succeeds (no UPDATE_ROLLBACK_FAILED for want of a database)
    assert answer["Data"]["Skipped"].startswith("a rollback: ")


def as_older_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make the migrate function the previous deploy's: its migrations/ lacks the newest version; its fingerprint."""
    previous = tmp_path / "previous-migrations"
    fingerprint = fingerprint_without_newest_version(tmp_path)
    monkeypatch.setattr(migrate_handler, "discover_migrations", lambda: discover_migrations(previous))
    monkeypatch.setattr(migrate_handler, "migrations_fingerprint", lambda: migrations_fingerprint(previous))
    return fingerprint


def test_a_rollback_update_answered_by_the_older_code_it_rolled_back_to_succeeds_and_moves_nothing(
    migrated_settings: DatabaseSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the failed update had applied the new version, and CloudFormation put the function's
    # previous code back before it rolls this resource back
    request = rollback_request(tmp_path)
    assert as_older_code(tmp_path, monkeypatch) == request["ResourceProperties"]["MigrationsFingerprint"]

    # When the older code answers the rollback's Update (the fingerprint asked for is its own)
    answer = migrate_handler.handler(request, LocalContext("migrate"))

    # Then the rollback succeeds, nothing is reverted or applied, and the answer says why
    assert schema_versions(migrated_settings) == ALL_VERSIONS
    assert answer["Data"]["Applied"] == ""
    assert answer["Data"]["Skipped"].startswith(f"a rollback answered by older code: the schema has version(s) {ALL_VERSIONS[-1]:04d}")


def test_the_status_asked_of_older_code_reports_the_schema_ahead_of_it(
    migrated_settings: DatabaseSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a schema the newest code migrated, and the previous deploy's code (after a rollback)
    as_older_code(tmp_path, monkeypatch)
    # When an operator asks it for the status
    answer = migrate_handler.handler({"action": "status"}, LocalContext("migrate"))
    # Then it answers where the schema stands, naming the version it has no files for, instead of failing
    assert (answer["current_version"], answer["pending"], answer["ahead_of_code"]) == (ALL_VERSIONS[-1], [], [ALL_VERSIONS[-1]])


def test_a_create_meeting_a_schema_ahead_of_the_code_fails_naming_it(
    migrated_settings: DatabaseSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a schema the newest code migrated, and older code deployed as a new stack against it
    as_older_code(tmp_path, monkeypatch)
    # When CloudFormation creates the resource
    with pytest.raises(MigrationError, match=rf"\(Create\) failed: the schema has version\(s\) {ALL_VERSIONS[-1]:04d} applied"):
        migrate_handler.handler(provider_request("Create"), LocalContext("migrate"))
    # Then nothing moved
    assert schema_versions(migrated_settings) == ALL_VERSIONS


def test_delete_succeeds_and_drops_nothing(migrated_settings: DatabaseSettings) -> None:
    # Given a migrated database
    tables_before = table_names(migrated_settings)
    # When the provider framework sends Delete (stack deleted or resource replaced)
    answer = migrate_handler.handler(provider_request("Delete"), LocalContext("migrate"))
    # Then it succeeds with the resource's own id and every table is still there
    assert answer == {"PhysicalResourceId": "upsell-signals-schema"}
    assert table_names(migrated_settings) == tables_before


def test_delete_succeeds_even_when_the_database_is_unreachable(
    database_settings: DatabaseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a database the function cannot reach
    monkeypatch.setenv("DB_PORT", "1")
    # When the provider framework sends Delete
    answer = migrate_handler.handler(provider_request("Delete"), LocalContext("migrate"))
    # Then it succeeds without connecting, so a stack deletion never hangs on the database
    assert answer["PhysicalResourceId"] == "upsell-signals-schema"


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_failure_raises_with_the_migrations_own_message(
    database_settings: DatabaseSettings, monkeypatch: pytest.MonkeyPatch, request_type: str
) -> None:
    # Given a database the function cannot reach (a closed port on loopback)
    monkeypatch.setenv("DB_PORT", "1")
    monkeypatch.setenv("DB_CONNECT_TIMEOUT_SECONDS", "2")
    # When the provider framework sends Create or Update
    # Then the handler raises (the framework answers FAILED with this message as the reason)
    with pytest.raises(MigrationError, match=rf"schema migration \({request_type}\) failed: \w+: .*connect to the database"):
        migrate_handler.handler(provider_request(request_type), LocalContext("migrate"))


def test_an_unknown_request_type_is_refused(database_settings: DatabaseSettings) -> None:
    # Given a request type CloudFormation does not send
    event = {**provider_request("Create"), "RequestType": "Rename"}
    # When the handler receives it
    # Then it raises naming it, rather than migrating
    with pytest.raises(BadEvent, match="unknown RequestType 'Rename'"):
        migrate_handler.handler(event, LocalContext("migrate"))


def test_manual_payloads_status_down_up(database_settings: DatabaseSettings) -> None:
    assert migrate_handler.handler({"action": "status"}, LocalContext("migrate"))["pending"] == ALL_VERSIONS
    assert migrate_handler.handler({}, LocalContext("migrate"))["applied"] == ALL_VERSIONS
    down = migrate_handler.handler({"action": "down", "target": 2}, LocalContext("migrate"))
    assert down["current_version"] == 2 and down["pending"] == ALL_VERSIONS[2:]
    assert migrate_handler.handler({"action": "up"}, LocalContext("migrate"))["applied"] == ALL_VERSIONS[2:]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"action": "sideways"}, "action must be 'up', 'down', 'status' or 'provision'"),
        ({"action": "down"}, 'needs "target"'),
        ({"action": "down", "target": -1}, "non-negative integer"),
        ({"action": "up", "version": 3}, "unknown field"),
        (["up"], "expects a JSON object"),
    ],
)
def test_bad_manual_payloads_are_refused_clearly(database_settings: DatabaseSettings, payload: Any, message: str) -> None:
    with pytest.raises(BadEvent, match=message):
        migrate_handler.handler(payload, LocalContext("migrate"))


def migrations_with_a_broken_newest_version(tmp_path: Path) -> Path:
    """migrations/ plus a next version whose SQL the server refuses (a column that already exists)."""
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    broken = f"{ALL_VERSIONS[-1] + 1:04d}_add_a_column_twice"
    (directory / f"{broken}.up.sql").write_text(
        "ALTER TABLE company_upsell_signals ADD COLUMN core_product VARCHAR(16) NULL;\n"
    )
    (directory / f"{broken}.down.sql").write_text("SELECT 1;\n")
    return directory


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_a_migration_whose_sql_fails_fails_the_deploy_with_the_servers_message(
    database_settings: DatabaseSettings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request_type: str
) -> None:
    # Given the function carrying a new version whose statement the server refuses
    directory = migrations_with_a_broken_newest_version(tmp_path)
    monkeypatch.setattr(migrate_handler, "discover_migrations", lambda: discover_migrations(directory))
    monkeypatch.setattr(migrate_handler, "migrations_fingerprint", lambda: migrations_fingerprint(directory))
    request = provider_request(request_type, fingerprint=migrations_fingerprint(directory))

    # When the provider framework sends Create or Update
    # Then the handler raises (FAILED, the deploy fails) with the server's own error in the reason
    with pytest.raises(MigrationError, match=rf"schema migration \({request_type}\) failed: .*Duplicate column name 'core_product'"):
        migrate_handler.handler(request, LocalContext("migrate"))
    # and the versions before it stay applied, the broken one unrecorded, so a fixed deploy applies it
    assert schema_versions(database_settings) == ALL_VERSIONS
