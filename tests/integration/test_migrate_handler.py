"""The migrate function as CloudFormation and an operator call it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from functions.migrate import handler as migrate_handler
from functions.migrate.migrator import discover_migrations
from functions.shared.db import connect
from functions.shared.errors import BadEvent
from functions.shared.settings import DatabaseSettings
from tests.scripts_support import LocalContext

ALL_VERSIONS = [m.version for m in discover_migrations()]


class CloudFormationStandIn:
    """A local HTTP server playing the pre-signed ResponseURL; keeps every PUT body."""

    def __init__(self) -> None:
        self.responses: list[dict[str, Any]] = []
        received = self.responses

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers["Content-Length"])
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/cfn-response?X-Amz-Signature=test"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cloudformation() -> Iterator[CloudFormationStandIn]:
    stand_in = CloudFormationStandIn()
    yield stand_in
    stand_in.close()


def custom_resource_event(request_type: str, response_url: str) -> dict[str, Any]:
    event = {
        "RequestType": request_type,
        "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:upsell-signals-migrate",
        "ResponseURL": response_url,
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/upsell-signals-dev/5b6f1f50-11ef-9c3f",
        "RequestId": "d4a5e0f2-7c1b-4a0e-9d51-1e0f2a3b4c5d",
        "LogicalResourceId": "SchemaMigrations",
        "ResourceType": "Custom::SchemaMigrations",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:...", "MigrationsHash": "abc123"},
    }
    if request_type != "Create":
        event["PhysicalResourceId"] = "upsell-signals-schema"
    return event


def table_names(settings: DatabaseSettings) -> set[str]:
    connection = connect(settings)
    with connection.cursor() as cursor:
        cursor.execute("SHOW TABLES")
        names = {row[0] for row in cursor.fetchall()}
    connection.close()
    return names


def test_create_applies_migrations_and_answers_success(
    database_settings: DatabaseSettings, cloudformation: CloudFormationStandIn
) -> None:
    result = migrate_handler.handler(custom_resource_event("Create", cloudformation.url), LocalContext("migrate"))

    assert result["applied"] == ALL_VERSIONS
    assert len(cloudformation.responses) == 1
    answer = cloudformation.responses[0]
    assert answer["Status"] == "SUCCESS"
    assert answer["RequestId"] == "d4a5e0f2-7c1b-4a0e-9d51-1e0f2a3b4c5d"
    assert answer["LogicalResourceId"] == "SchemaMigrations"
    assert answer["PhysicalResourceId"] == "upsell-signals-schema"
    assert answer["Data"]["CurrentVersion"] == str(ALL_VERSIONS[-1])
    assert "company_upsell_signals" in table_names(database_settings)


def test_delete_answers_success_and_drops_nothing(
    migrated_settings: DatabaseSettings, cloudformation: CloudFormationStandIn
) -> None:
    tables_before = table_names(migrated_settings)

    migrate_handler.handler(custom_resource_event("Delete", cloudformation.url), LocalContext("migrate"))

    assert [answer["Status"] for answer in cloudformation.responses] == ["SUCCESS"]
    assert table_names(migrated_settings) == tables_before


def test_failure_answers_failed_with_the_reason(
    database_settings: DatabaseSettings, cloudformation: CloudFormationStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a database the function cannot reach (a closed port on loopback)
    monkeypatch.setenv("DB_PORT", "1")
    monkeypatch.setenv("DB_CONNECT_TIMEOUT_SECONDS", "2")

    with pytest.raises(Exception, match="connect to the database"):
        migrate_handler.handler(custom_resource_event("Update", cloudformation.url), LocalContext("migrate"))

    assert len(cloudformation.responses) == 1
    assert cloudformation.responses[0]["Status"] == "FAILED"
    assert "connect to the database" in cloudformation.responses[0]["Reason"]


def test_manual_payloads_status_down_up(database_settings: DatabaseSettings) -> None:
    assert migrate_handler.handler({"action": "status"}, LocalContext("migrate"))["pending"] == ALL_VERSIONS
    assert migrate_handler.handler({}, LocalContext("migrate"))["applied"] == ALL_VERSIONS
    down = migrate_handler.handler({"action": "down", "target": 2}, LocalContext("migrate"))
    assert down["current_version"] == 2 and down["pending"] == ALL_VERSIONS[2:]
    assert migrate_handler.handler({"action": "up"}, LocalContext("migrate"))["applied"] == ALL_VERSIONS[2:]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"action": "sideways"}, "action must be 'up', 'down' or 'status'"),
        ({"action": "down"}, 'needs "target"'),
        ({"action": "down", "target": -1}, "non-negative integer"),
        ({"action": "up", "version": 3}, "unknown field"),
        (["up"], "expects a JSON object"),
    ],
)
def test_bad_manual_payloads_are_refused_clearly(database_settings: DatabaseSettings, payload: Any, message: str) -> None:
    with pytest.raises(BadEvent, match=message):
        migrate_handler.handler(payload, LocalContext("migrate"))
