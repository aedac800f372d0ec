"""Credentials from Secrets Manager (moto), including a rotation the cache has not seen yet."""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pymysql
import pytest
from moto import mock_aws

from functions.ingest.s3_source import SignalObjectStore
from functions.ingest.service import SyncService
from functions.ingest.sync_values import SyncOptions
from functions.migrate import handler as migrate_handler
from functions.migrate.files import discover_migrations
from functions.migrate.fingerprint import migrations_fingerprint
from functions.migrate.handler import provision_accounts
from functions.migrate.migrator import Migrator
from functions.shared import db as db_module
from functions.shared.aws import secrets_provider
from functions.shared.db import connect
from functions.shared.errors import CredentialsRejected, MigrationError, TransientError
from functions.shared.settings import DatabaseSettings, load_ingest_settings
from tests.factories import snowflake_table
from tests.integration.conftest import BUCKET, DAY_ONE, expected_rows, ingest_env, table_rows
from tests.integration.test_migrate_handler import ALL_VERSIONS, as_older_code, schema_versions
from tests.scripts_support import LocalContext


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="eu-west-1")


def test_a_rotated_password_is_picked_up_on_access_denied(migrated_settings: DatabaseSettings, secrets: Any) -> None:
    # Given the ingest account and its secret, in the format RDS writes
    first_password, rotated_password = uuid.uuid4().hex, uuid.uuid4().hex
    admin = connect(migrated_settings)
    migrator = Migrator(admin, discover_migrations())
    migrator.provision_ingest_user("upsell_ingest", first_password)
    secret = {
        "username": "upsell_ingest",
        "password": first_password,
        "host": migrated_settings.host,
        "port": migrated_settings.port,
        "dbname": migrated_settings.name,
        "engine": "mariadb",
    }
    arn = secrets.create_secret(Name=f"ingest-{uuid.uuid4().hex}", SecretString=json.dumps(secret))["ARN"]
    by_secret = replace(migrated_settings, host=None, user=None, password=None, secret_arn=arn)
    connect(by_secret).close()  # the secret is now cached

    # When the password is rotated in the database and in the secret
    migrator.provision_ingest_user("upsell_ingest", rotated_password)
    secrets.put_secret_value(SecretId=arn, SecretString=json.dumps(secret | {"password": rotated_password}))
    admin.close()

    # Then the next connection, refused with the cached password, fetches the secret again and succeeds
    connection = connect(by_secret)
    with connection.cursor() as cursor:
        cursor.execute("SELECT CURRENT_USER()")
        assert cursor.fetchone()[0] == "upsell_ingest@%"
    connection.close()


# -- a rotation met midway through a sync -----------------------------------------


def account_secret(settings: DatabaseSettings, password: str, username: str = "upsell_ingest") -> dict[str, Any]:
    """An account's secret (the ingest's by default) as RDS's rotation writes it."""
    return {
        "username": username,
        "password": password,
        "host": settings.host,
        "port": settings.port,
        "dbname": settings.name,
        "engine": "mariadb",
    }


@pytest.fixture
def ingest_account_by_secret(migrated_settings: DatabaseSettings, s3_client: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The ingest account provisioned with a first password, its secret in moto (inside s3_client's mock)."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    secrets_provider.cache_clear()  # a provider made in another test may point at another region
    password = uuid.uuid4().hex
    admin = connect(migrated_settings)
    Migrator(admin, discover_migrations()).provision_ingest_user("upsell_ingest", password)
    admin.close()
    client = boto3.client("secretsmanager", region_name="eu-west-1")
    arn = client.create_secret(
        Name=f"ingest-{uuid.uuid4().hex}", SecretString=json.dumps(account_secret(migrated_settings, password))
    )["ARN"]
    yield client, arn, replace(migrated_settings, host=None, user=None, password=None, secret_arn=arn)
    secrets_provider.cache_clear()


def rotate_midway(settings: DatabaseSettings, client: Any, arn: str) -> str:
    """A rotation between its setSecret and finishSecret steps: the server has the new password,
    AWSPENDING holds it, AWSCURRENT still the old one."""
    new_password = uuid.uuid4().hex
    admin = connect(settings)
    with admin.cursor() as cursor:
        cursor.execute("ALTER USER 'upsell_ingest'@'%%' IDENTIFIED BY %s", (new_password,))
    admin.close()
    client.put_secret_value(
        SecretId=arn, SecretString=json.dumps(account_secret(settings, new_password)), VersionStages=["AWSPENDING"]
    )
    return new_password


def test_a_rotation_midway_through_a_sync_does_not_fail_the_date(
    migrated_settings: DatabaseSettings,
    ingest_account_by_secret: Any,
    db: pymysql.Connection[Any],
    s3_client: Any,
    upload: Any,
    tmp_path: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, arn, by_secret = ingest_account_by_secret
    table = snowflake_table(3_000, seed=11)
    upload(DAY_ONE, table)
    connections_opened = []

    def connect_and_rotate_after_the_claim() -> pymysql.Connection[Any]:
        # Given a sync whose first connection (the claim) used the cached secret, and a rotation
        # staged on the server and in Secrets Manager before its next connection
        if len(connections_opened) == 1:
            rotate_midway(migrated_settings, client, arn)
        connection = connect(by_secret, local_infile=True)
        connections_opened.append(connection)
        return connection

    # When the sync runs on
    service = SyncService(
        load_ingest_settings(ingest_env(WORK_DIR=str(tmp_path))),
        connect_and_rotate_after_the_claim,
        SignalObjectStore(s3_client, BUCKET),
        sleep=lambda _seconds: None,
    )
    result = service.sync(DAY_ONE, None, SyncOptions(invocation_id="rotation-midway"))

    # Then the later connections, refused with the cached password, connect with AWSPENDING's, and the date completes
    assert len(connections_opened) >= 2
    assert any("connected with the secret's AWSPENDING version" in record.getMessage() for record in caplog.records)
    assert result.status == "completed"
    assert table_rows(db) == expected_rows(table)


def test_a_password_the_secret_never_gets_fails_as_transient_after_bounded_retries(
    migrated_settings: DatabaseSettings, ingest_account_by_secret: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the server's password changed and the secret holding neither it nor a pending version
    _client, _arn, by_secret = ingest_account_by_secret
    connect(by_secret).close()  # cached
    admin = connect(migrated_settings)
    with admin.cursor() as cursor:
        cursor.execute("ALTER USER 'upsell_ingest'@'%%' IDENTIFIED BY %s", (uuid.uuid4().hex,))
    admin.close()
    monkeypatch.setattr(db_module, "ROTATION_BACKOFF_SECONDS", 0.2)
    started = time.monotonic()
    # When the ingest connects
    with pytest.raises(CredentialsRejected, match="AWSCURRENT and AWSPENDING") as refused:
        connect(by_secret)
    # Then it retried with backoff (0.2 + 0.4 + 0.8 s), then failed as transient: Lambda retries it, no dead letter yet
    assert isinstance(refused.value, TransientError)
    assert 1.4 <= time.monotonic() - started < 10
    # And the 06:00 reader is told the remedy for the one way a deploy leaves it so
    assert 'invoke the migrate function with {"action": "provision"}' in str(refused.value)


@pytest.mark.parametrize(
    ("variable", "account"), [("INGEST_DB_SECRET_ARN", "upsell_ingest"), ("STATUS_DB_SECRET_ARN", "upsell_status")]
)
def test_the_migrate_function_provisions_only_the_account_each_secret_may_name(
    migrated_settings: DatabaseSettings, secrets: Any, monkeypatch: pytest.MonkeyPatch, variable: str, account: str
) -> None:
    # Given an account secret rewritten to name another account on the server (a locked one here)
    secrets_provider.cache_clear()
    admin = connect(migrated_settings)
    with admin.cursor() as cursor:
        cursor.execute("CREATE USER IF NOT EXISTS 'someone_else'@'%' ACCOUNT LOCK")
    planted = account_secret(migrated_settings, "planted-password-0001", "someone_else")
    arn = secrets.create_secret(Name=f"account-{uuid.uuid4().hex}", SecretString=json.dumps(planted))["ARN"]
    monkeypatch.setenv(variable, arn)
    try:
        # When the migrate function provisions the accounts
        with pytest.raises(MigrationError, match=f"names the account 'someone_else'; only '{account}' is provisioned"):
            provision_accounts(Migrator(admin, discover_migrations()))
        # Then that account is left as it was: still locked, its password not the planted one
        with admin.cursor() as cursor:
            cursor.execute("SHOW CREATE USER 'someone_else'@'%'")
            assert "ACCOUNT LOCK" in cursor.fetchone()[0]
        with pytest.raises(pymysql.err.OperationalError):
            pymysql.connect(
                host=migrated_settings.host, port=migrated_settings.port, user="someone_else", password="planted-password-0001"
            )
    finally:
        with admin.cursor() as cursor:
            cursor.execute("DROP USER IF EXISTS 'someone_else'@'%'")
        admin.close()
        secrets_provider.cache_clear()


def test_a_deploy_gives_each_account_the_password_in_its_own_secret(
    migrated_settings: DatabaseSettings, secrets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the ingest and status secrets as the stack creates them, each with a password of its own
    secrets_provider.cache_clear()
    passwords = {"upsell_ingest": f"ingest-{uuid.uuid4().hex}", "upsell_status": f"status-{uuid.uuid4().hex}"}
    for variable, account in (("INGEST_DB_SECRET_ARN", "upsell_ingest"), ("STATUS_DB_SECRET_ARN", "upsell_status")):
        secret = account_secret(migrated_settings, passwords[account], account)
        arn = secrets.create_secret(Name=f"{account}-{uuid.uuid4().hex}", SecretString=json.dumps(secret))["ARN"]
        monkeypatch.setenv(variable, arn)
    try:
        # When the migration runs at deploy (an Update with the migrations already applied)
        update = {
            "RequestType": "Update",
            "LogicalResourceId": "Schema",
            "PhysicalResourceId": "upsell-signals-schema",
            "ResourceProperties": {"MigrationsFingerprint": migrations_fingerprint(), "IngestMissingRows": "keep"},
        }
        answer = migrate_handler.handler(update, LocalContext("migrate"))
    finally:
        secrets_provider.cache_clear()
    # Then each account logs in with its own secret's password, and not with the other's
    assert answer["Data"]["CurrentVersion"] == str(ALL_VERSIONS[-1])
    for account, password in passwords.items():
        connection = connect(replace(migrated_settings, user=account, password=password))
        with connection.cursor() as cursor:
            cursor.execute("SELECT CURRENT_USER()")
            assert cursor.fetchone()[0].startswith(f"{account}@")
        connection.close()
    with pytest.raises(pymysql.err.OperationalError) as refused:
        pymysql.connect(
            host=migrated_settings.host, port=migrated_settings.port, user="upsell_status", password=passwords["upsell_ingest"]
        )
    assert refused.value.args[0] == 1045


def schema_update(described: dict[str, Any], *, old: dict[str, Any] | None = None) -> dict[str, Any]:
    """The provider's Update of the schema resource, its ingest secret generator describing `described`'s place
    (and OldResourceProperties' `old`'s, as in a rollback)."""

    def properties(place: dict[str, Any]) -> dict[str, Any]:
        template = {key: place[key] for key in ("engine", "username", "host", "port", "dbname")}
        generator = {"SecretStringTemplate": json.dumps(template), "GenerateStringKey": "password"}
        return {
            "MigrationsFingerprint": migrations_fingerprint(),
            "IngestMissingRows": "keep",
            "IngestSecretGenerator": generator,
        }

    return {
        "RequestType": "Update",
        "LogicalResourceId": "Schema",
        "PhysicalResourceId": "upsell-signals-schema",
        "ResourceProperties": properties(described),
        **({"OldResourceProperties": properties(old)} if old is not None else {}),
    }


@pytest.mark.parametrize(
    ("leads_to", "refusal"),
    [
        ("another-database", "could not log in where its secret points"),
        ("another-database-it-may-use", "secret leads to database 'elsewhere_"),
        ("a-port-nothing-listens-on", "could not log in where its secret points"),
    ],
)
def test_a_deploy_fails_when_an_accounts_secret_leads_elsewhere_than_the_migration_ran(
    migrated_settings: DatabaseSettings, secrets: Any, monkeypatch: pytest.MonkeyPatch, leads_to: str, refusal: str
) -> None:
    # Given the ingest secret as an imported environment's stack writes it from cdk.json, naming a
    # database or port other than the administrator's (only cdk.json was edited)
    secrets_provider.cache_clear()
    elsewhere = f"elsewhere_{uuid.uuid4().hex[:12]}"
    admin = connect(migrated_settings)
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {elsewhere}")
        if leads_to == "another-database-it-may-use":
            cursor.execute(f"GRANT SELECT ON {elsewhere}.* TO 'upsell_ingest'@'%'")
    secret = account_secret(migrated_settings, f"ingest-{uuid.uuid4().hex}")
    if leads_to == "a-port-nothing-listens-on":
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            secret["port"] = unused.getsockname()[1]
    else:
        secret["dbname"] = elsewhere
    monkeypatch.setenv(
        "INGEST_DB_SECRET_ARN", secrets.create_secret(Name=f"ingest-{uuid.uuid4().hex}", SecretString=json.dumps(secret))["ARN"]
    )
    update = schema_update(described=secret)
    try:
        # When the deploy's migration runs
        # Then it fails (the deploy with it), naming where the account leads, where it was provisioned and what to set
        with pytest.raises(MigrationError, match=refusal) as failed:
            migrate_handler.handler(update, LocalContext("migrate"))
        assert f"provisioned it on database '{migrated_settings.name}'" in str(failed.value)
        assert "databaseName in cdk.json" in str(failed.value)
    finally:
        secrets_provider.cache_clear()
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE {elsewhere}")
            if leads_to == "another-database-it-may-use":
                cursor.execute(f"REVOKE SELECT ON {elsewhere}.* FROM 'upsell_ingest'@'%'")
        admin.close()


def test_the_rollback_of_a_deploy_the_check_failed_completes_while_the_secret_still_leads_elsewhere(
    migrated_settings: DatabaseSettings, secrets: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a deploy that moved the ingest secret to a database the migration does not run on (so it
    # failed), and CloudFormation rolling this resource back before it restores the secret: the
    # request describes the old place, the secret still names the new one
    secrets_provider.cache_clear()
    moved = account_secret(migrated_settings, f"ingest-{uuid.uuid4().hex}") | {"dbname": "elsewhere_db"}
    monkeypatch.setenv(
        "INGEST_DB_SECRET_ARN", secrets.create_secret(Name=f"ingest-{uuid.uuid4().hex}", SecretString=json.dumps(moved))["ARN"]
    )
    rollback = schema_update(described=account_secret(migrated_settings, "unused"), old=moved)
    try:
        # When the rollback's Update arrives, Then it completes (a failure would leave the stack in
        # UPDATE_ROLLBACK_FAILED), not checking where a secret about to be restored leads
        with caplog.at_level(logging.ERROR):
            answer = migrate_handler.handler(rollback, LocalContext("migrate"))
    finally:
        secrets_provider.cache_clear()
    assert answer["Data"]["CurrentVersion"] == str(ALL_VERSIONS[-1])
    # And it says, as an error, what to run once the rollback completes: restoring the secret's
    # template generates a password the server does not have
    assert any(
        record.levelno == logging.ERROR and '{"action": "provision"}' in record.getMessage() for record in caplog.records
    ), [record.getMessage() for record in caplog.records]


def test_an_account_no_migration_has_made_is_named_when_provisioned(migrated_settings: DatabaseSettings) -> None:
    # Given a server without the account (its migration has not run)
    admin = connect(migrated_settings)
    try:
        # When the migrate function is asked to give it a password
        # Then it fails naming the account and what creates it, and creates nothing
        with pytest.raises(MigrationError, match="the account 'upsell_nobody' does not exist: its migration has not run"):
            Migrator(admin, discover_migrations()).provision_status_user("upsell_nobody", uuid.uuid4().hex)
        with admin.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM mysql.user WHERE user = 'upsell_nobody'")
            assert cursor.fetchone()[0] == 0
    finally:
        admin.close()


def test_after_a_rollback_the_older_code_provisions_the_secrets_current_password_when_asked(
    migrated_settings: DatabaseSettings, secrets: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the schema the newest code migrated, the previous deploy's code put back by a rollback,
    # and an ingest secret whose password the server does not have (the rollback generated it)
    as_older_code(tmp_path, monkeypatch)
    secrets_provider.cache_clear()
    password = f"rolled-back-{uuid.uuid4().hex}"
    arn = secrets.create_secret(
        Name=f"ingest-{uuid.uuid4().hex}", SecretString=json.dumps(account_secret(migrated_settings, password))
    )
    monkeypatch.setenv("INGEST_DB_SECRET_ARN", arn["ARN"])
    try:
        # When an operator invokes it with {"action": "provision"} ("up" would refuse a schema ahead of it)
        answer = migrate_handler.handler({"action": "provision"}, LocalContext("migrate"))
    finally:
        secrets_provider.cache_clear()
    # Then the account has the secret's password, and the schema has not moved
    assert answer["ahead_of_code"] == [ALL_VERSIONS[-1]] and schema_versions(migrated_settings) == ALL_VERSIONS
    ingest = connect(replace(migrated_settings, user="upsell_ingest", password=password))
    with ingest.cursor() as cursor:
        cursor.execute("SELECT CURRENT_USER()")
        assert cursor.fetchone()[0].startswith("upsell_ingest@")
    ingest.close()


@pytest.mark.parametrize("account", ["upsell_ingest", "upsell_status"])
def test_each_account_changes_its_own_password_as_the_rotation_does_and_no_other(
    migrated_settings: DatabaseSettings, account: str
) -> None:
    # Given the account provisioned, with only the rights its migration gave it
    first, rotated = f"first-{uuid.uuid4().hex}", f"rotated-{uuid.uuid4().hex}"
    admin = connect(migrated_settings)
    migrator = Migrator(admin, discover_migrations())
    provision = migrator.provision_ingest_user if account == "upsell_ingest" else migrator.provision_status_user
    provision(account, first)
    admin.close()
    limited = connect(replace(migrated_settings, user=account, password=first))
    try:
        # When it runs what Secrets Manager's single-user MariaDB rotation runs (its set_secret and
        # test_secret, aws-samples/aws-secrets-manager-rotation-lambdas)
        with limited.cursor() as cursor:
            cursor.execute("SET PASSWORD = PASSWORD(%s)", (rotated,))
        # Then it may not set another account's
        other = "upsell_status" if account == "upsell_ingest" else "upsell_ingest"
        with pytest.raises(pymysql.err.OperationalError) as refused, limited.cursor() as cursor:
            cursor.execute(f"SET PASSWORD FOR '{other}'@'%' = PASSWORD('taken-over')")
        assert refused.value.args[0] in (1044, 1142)
    finally:
        limited.close()
    # And the new password is the one that logs in
    rotated_in = connect(replace(migrated_settings, user=account, password=rotated))
    with rotated_in.cursor() as cursor:
        cursor.execute("SELECT NOW()")
        assert cursor.fetchone()[0] is not None
    rotated_in.close()
