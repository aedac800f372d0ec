"""Shared fixtures: a real MariaDB (started by scripts/with-mariadb or given by DB_HOST).

There is no skip here on purpose: without a database the suite fails at start-up.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pymysql
import pytest

from functions.migrate.files import discover_migrations
from functions.migrate.migrator import Migrator
from functions.shared.db import connect
from functions.shared.settings import DatabaseSettings, load_database_settings

# The suite's own connections live as long as a test (a soak runs for minutes); the
# functions' connections keep the short idle timeout they are given in production.
FIXTURE_IDLE_SECONDS = 3600


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get("DB_HOST"):
        raise pytest.UsageError(
            "DB_HOST is not set: run the suite with `make test` (it starts a throwaway MariaDB) "
            "or export DB_HOST, DB_PORT, DB_USER, DB_PASSWORD of a server the tests may create databases on."
        )


@pytest.fixture(scope="session")
def server_settings() -> DatabaseSettings:
    """The server the suite runs against; each test gets its own database on it."""
    return load_database_settings()


@pytest.fixture
def database_settings(server_settings: DatabaseSettings, monkeypatch: pytest.MonkeyPatch) -> Iterator[DatabaseSettings]:
    """A fresh, empty database for one test, dropped afterwards; DB_NAME points at it."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = connect(server_settings, database="", idle_timeout_seconds=FIXTURE_IDLE_SECONDS)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        monkeypatch.setenv("DB_NAME", name)
        yield replace(server_settings, name=name)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture
def migrated_settings(database_settings: DatabaseSettings) -> DatabaseSettings:
    """A fresh database with every migration applied."""
    connection = connect(database_settings)
    try:
        Migrator(connection, discover_migrations()).up()
    finally:
        connection.close()
    return database_settings


@pytest.fixture
def db(migrated_settings: DatabaseSettings) -> Iterator[pymysql.Connection[Any]]:
    """An autocommit connection to the migrated test database, for Given/Then steps."""
    connection = connect(migrated_settings, idle_timeout_seconds=FIXTURE_IDLE_SECONDS)
    connection.autocommit(True)
    try:
        yield connection
    finally:
        connection.close()
