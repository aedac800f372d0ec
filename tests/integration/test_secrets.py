"""Credentials from Secrets Manager (moto), including a rotation the cache has not seen yet."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.migrate.migrator import Migrator, discover_migrations
from functions.shared.db import connect
from functions.shared.settings import DatabaseSettings


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
