"""Lambda entry for schema migrations: CloudFormation custom resource or manual payload.

Manual payloads: {} or {"action": "up"}, {"action": "down", "target": N}, {"action": "status"}.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.migrate.cloudformation import CustomResourceRequest, is_custom_resource_event, send_response
from functions.migrate.migrator import MigrationReport, Migrator, discover_migrations
from functions.shared.aws import secrets_provider
from functions.shared.db import connect
from functions.shared.errors import BadEvent, MigrationError
from functions.shared.settings import load_database_settings, load_migrate_settings

logger = Logger(service="upsell-signals-migrate")


def run_migrations(action: str, target: int | None = None) -> MigrationReport:
    """Connect with the configured credentials and run one migrator action."""
    connection = connect(load_database_settings())
    try:
        migrator = Migrator(connection, discover_migrations())
        if action == "up":
            report = migrator.up()
            provision_ingest_user(migrator)
            return report
        if action == "down":
            if target is None:
                raise BadEvent('"down" needs "target": the version to go down to (0 empties the schema)')
            return migrator.down(target)
        return migrator.status()
    finally:
        connection.close()


def provision_ingest_user(migrator: Migrator) -> None:
    """Set the ingest account's password from its secret (in AWS; locally there is none)."""
    secret_arn = load_migrate_settings().ingest_user_secret_arn
    if not secret_arn:
        return
    secret = secrets_provider().get(secret_arn, transform="json", max_age=0)
    if not isinstance(secret, dict) or "username" not in secret or "password" not in secret:
        raise MigrationError("the ingest user's secret must be JSON with username and password")
    migrator.provision_ingest_user(secret["username"], secret["password"])
    logger.info("ingest database user %s provisioned", secret["username"])


def parse_manual_payload(event: Any) -> tuple[str, int | None]:
    """Validate a manual payload into (action, target)."""
    if not isinstance(event, dict):
        raise BadEvent(f"migrate expects a JSON object, got {type(event).__name__}: {str(event)[:200]}")
    unknown = set(event) - {"action", "target"}
    if unknown:
        raise BadEvent(f"unknown field(s) {sorted(unknown)}; expected 'action' and, for down, 'target'")
    action = event.get("action", "up")
    if action not in ("up", "down", "status"):
        raise BadEvent(f"action must be 'up', 'down' or 'status', got {action!r}")
    target = event.get("target")
    if target is not None and (not isinstance(target, int) or isinstance(target, bool) or target < 0):
        raise BadEvent(f"target must be a non-negative integer, got {target!r}")
    return action, target


def _answer_cloudformation(request: CustomResourceRequest) -> dict[str, Any]:
    if request.request_type == "Delete":
        # Deleting the stack (or replacing this resource) must never drop data.
        send_response(request, succeeded=True, reason="delete: schema left in place")
        return {"action": "none", "request_type": "Delete"}
    try:
        report = run_migrations("up")
    except Exception as error:
        # Any failure must reach CloudFormation as FAILED, or the stack hangs for an hour.
        logger.exception("migration failed during %s", request.request_type)
        send_response(request, succeeded=False, reason=f"{type(error).__name__}: {error}")
        raise
    send_response(
        request,
        succeeded=True,
        reason=f"applied {report.applied or 'nothing'}; schema at version {report.current_version}",
        data={"CurrentVersion": str(report.current_version), "Applied": ",".join(map(str, report.applied))},
    )
    return report.as_dict()


@logger.inject_lambda_context(log_event=False)
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    """Apply, revert or report migrations; answer CloudFormation when it is the caller."""
    if is_custom_resource_event(event):
        return _answer_cloudformation(CustomResourceRequest.from_event(event))
    action, target = parse_manual_payload(event)
    report = run_migrations(action, target)
    logger.info("migrations done", extra=report.as_dict())
    return report.as_dict()
