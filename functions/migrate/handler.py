"""Lambda entry for schema migrations: the CDK Provider's on_event handler, or a manual payload.

At deploy, CloudFormation talks to the CDK provider framework (infra/constructs/migrate.py),
which invokes this function synchronously and answers CloudFormation itself: a returned dict is
SUCCESS, a raised error is FAILED with the error's message as the reason. Nothing here replies to
CloudFormation. An Update whose migrations fingerprint is not the one this code carries is a
rollback's and changes nothing. Manual payloads: {} or {"action": "up"}, {"action": "down", "target": N},
{"action": "status"}, {"action": "provision"}.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.migrate.files import discover_migrations
from functions.migrate.fingerprint import migrations_fingerprint
from functions.migrate.migrator import MigrationReport, Migrator, server_and_database
from functions.migrate.waits import MigrationWaits
from functions.shared.aws import secrets_provider
from functions.shared.contract import INGEST_USERNAME, MIGRATE_SERVICE_NAME, STATUS_USERNAME
from functions.shared.db import connect
from functions.shared.errors import BadEvent, IngestError, MigrationError, SchemaAhead
from functions.shared.settings import load_database_settings, load_migrate_settings

logger = Logger(service=MIGRATE_SERVICE_NAME)


def run_migrations(
    action: str,
    target: int | None = None,
    waits: MigrationWaits | None = None,
    *,
    ingest_deletes: bool | None = None,
    described: Mapping[str, Any] | None = None,
) -> MigrationReport:
    """Connect with the configured credentials and run one migrator action, its waits bounded by `waits`.

    `ingest_deletes`: whether the ingest deletes missing rows, as the deploy asks (else MISSING_ROWS).
    `described`: the deploy's resource properties, when a deploy asks (provision_accounts).
    """
    connection = connect(load_database_settings())
    try:
        migrator = Migrator(connection, discover_migrations(), waits)
        if action == "up":
            report = migrator.up()
            provision_accounts(migrator, ingest_deletes, described)
            return report
        if action == "down":
            if target is None:
                raise BadEvent('"down" needs "target": the version to go down to (0 empties the schema)')
            return migrator.down(target)
        if action == "provision":
            # The accounts alone, whatever the schema's version (after a rollback it may be ahead
            # of this code): their passwords from their secrets, the ingest's right to delete.
            provision_accounts(migrator, ingest_deletes)
        return migrator.status()
    finally:
        connection.close()


def provision_accounts(
    migrator: Migrator, ingest_deletes: bool | None = None, described: Mapping[str, Any] | None = None
) -> None:
    """Set the ingest and status accounts' passwords from their secrets, and the ingest's right to delete;
    then check that each account's secret leads where it was provisioned.

    In AWS only: locally neither secret is configured, and whichever is not is left alone.
    `described`: the deploy's resource properties (their secrets' generators); None when a person asks.
    """
    settings = load_migrate_settings()
    accounts = (
        (INGEST_USERNAME, settings.ingest_user_secret_arn, "IngestSecretGenerator"),
        (STATUS_USERNAME, settings.status_user_secret_arn, "StatusSecretGenerator"),
    )
    for account, secret_arn, generator in accounts:
        if not secret_arn:
            continue
        secret = _account_secret(secret_arn, account)
        if account == INGEST_USERNAME:
            may_delete = settings.ingest_deletes if ingest_deletes is None else ingest_deletes
            migrator.provision_ingest_user(account, str(secret["password"]), may_delete=may_delete)
            logger.info("database account %s provisioned (may delete missing rows: %s)", account, may_delete)
        else:
            migrator.provision_status_user(account, str(secret["password"]))
            logger.info("database account %s provisioned", account)
        _check_it_logs_in_where_provisioned(migrator, secret_arn, account, secret, _described_location(described, generator))


def _account_secret(secret_arn: str, account: str) -> dict[str, Any]:
    """An account's secret, which must name that account and no other."""
    secret = secrets_provider().get(secret_arn, transform="json", max_age=0)
    if not isinstance(secret, dict) or "username" not in secret or "password" not in secret:
        raise MigrationError(f"the secret of the {account} account must be JSON with username and password")
    if secret["username"] != account:
        # Anyone who could write this secret would otherwise set the password of any account, the administrator's too.
        named = secret["username"]
        raise MigrationError(f"the secret of the {account} account names the account {named!r}; only {account!r} is provisioned")
    return secret


def _location(fields: Mapping[str, Any]) -> tuple[str, str, str]:
    return str(fields.get("host")), str(fields.get("port")), str(fields.get("dbname"))


def _described_location(described: Mapping[str, Any] | None, generator: str) -> tuple[str, str, str] | None:
    """Host, port and database the deploy's secret generator writes into the account's secret, if it says."""
    template = (described or {}).get(generator, {}).get("SecretStringTemplate")
    return _location(json.loads(template)) if template else None


def _check_it_logs_in_where_provisioned(
    migrator: Migrator, secret_arn: str, account: str, secret: Mapping[str, Any], described: tuple[str, str, str] | None
) -> None:
    """The account's secret leads to the server and database the migration just provisioned.

    The migration runs where the administrator's secret points; the functions connect where
    their own account's secret points (cdk.json's endpoint, port and databaseName). Were the
    two apart, the deploy would succeed and every sync be refused. Not checked while the secret
    names another place than the deploy describes: in a rollback the secret may not be restored
    yet when this resource is (CloudFormation does not document the order), and failing then
    would leave the stack in UPDATE_ROLLBACK_FAILED; once restored, it names the old place again.
    """
    if described is not None and _location(secret) != described:
        # Restoring the secret's template afterwards generates a password nothing sets on the server.
        logger.error(
            "the %s account's secret names %s, the deploy describes %s (a rollback not yet restoring the "
            "secret): where it leads is not checked. Once the rollback completes, invoke this function with "
            '{"action": "provision"}: the restored secret has a new password the server does not have yet',
            account,
            _location(secret),
            described,
        )
        return
    by_secret = replace(load_database_settings(), host=None, user=None, password=None, secret_arn=secret_arn)
    provisioned = migrator.server_and_database()
    try:
        connection = connect(by_secret)
    except IngestError as error:
        # Unreachable, or refused: a wrong endpoint, port or database name says either, as may an outage.
        raise MigrationError(
            f"the {account} account could not log in where its secret points ({error}); the migration provisioned it "
            f"on {_where(provisioned)}, where the administrator's secret points. If the database's endpoint, port or "
            "databaseName in cdk.json differ from what that secret names, set them to it; otherwise deploy again"
        ) from error
    try:
        reached = server_and_database(connection)
    finally:
        connection.close()
    if reached != provisioned:
        raise MigrationError(
            f"the {account} account's secret leads to {_where(reached)}, the migration provisioned it on "
            f"{_where(provisioned)}, where the administrator's secret points: set the database's endpoint, port and "
            "databaseName in cdk.json to what that secret names"
        )


def _where(server: tuple[str, int, str]) -> str:
    hostname, port, database = server
    return f"database {database!r} of the server {hostname}:{port}"


def parse_manual_payload(event: Any) -> tuple[str, int | None]:
    """Validate a manual payload into (action, target)."""
    if not isinstance(event, dict):
        raise BadEvent(f"migrate expects a JSON object, got {type(event).__name__}: {str(event)[:200]}")
    unknown = set(event) - {"action", "target"}
    if unknown:
        raise BadEvent(f"unknown field(s) {sorted(unknown)}; expected 'action' and, for down, 'target'")
    action = event.get("action", "up")
    if action not in ("up", "down", "status", "provision"):
        raise BadEvent(f"action must be 'up', 'down', 'status' or 'provision', got {action!r}")
    target = event.get("target")
    if target is not None and (not isinstance(target, int) or isinstance(target, bool) or target < 0):
        raise BadEvent(f"target must be a non-negative integer, got {target!r}")
    return action, target


RequestType = Literal["Create", "Update", "Delete"]
# Kept from the resource's first answer on: a changed id would make CloudFormation treat an Update
# as a replacement and send a Delete for the old id.
PHYSICAL_RESOURCE_ID = "upsell-signals-schema"
# CloudFormation keeps at most 4 KiB of a response; the framework adds a log link to the reason.
MAX_REASON_CHARS = 1500


def is_custom_resource_request(event: Any) -> bool:
    """A CloudFormation request as the provider framework passes it on (its ResponseURL masked)."""
    return isinstance(event, dict) and "RequestType" in event and "LogicalResourceId" in event


def rollback_reason(event: dict[str, Any], own_fingerprint: str) -> str | None:
    """Why an Update is not for this code (a rollback's), or None when it is.

    On a failed stack update CloudFormation rolls this resource back with another Update whose
    ResourceProperties are the old ones and OldResourceProperties the failed new ones; the request
    carries no rollback flag, and the function still runs the new code (AWS-FACTS.md, custom
    resources). So the fingerprint asked for is compared with the one of the migrations/ carried
    here: a different one means the stack wants a schema this code was not built for.
    """
    asked = event.get("ResourceProperties", {}).get("MigrationsFingerprint")
    if asked == own_fingerprint:
        return None
    previous = event.get("OldResourceProperties", {}).get("MigrationsFingerprint")
    what = "a rollback" if previous == own_fingerprint else "a request for other migrations"
    return (
        f"{what}: the stack asks for migrations {str(asked)[:12]}, this function carries {own_fingerprint[:12]} "
        f"(the failed update's were {str(previous)[:12]}); the schema is left as it is"
    )


def on_event(event: dict[str, Any], waits: MigrationWaits | None = None) -> dict[str, Any]:
    """Create/Update apply pending migrations; a rollback's Update and Delete leave the schema alone. Raises on failure."""
    request_type: RequestType = event["RequestType"]
    if request_type not in ("Create", "Update", "Delete"):
        raise BadEvent(f"unknown RequestType {request_type!r}")
    if request_type == "Delete":
        # Deleting the stack (or replacing this resource) must never drop data.
        logger.info("custom resource Delete: schema left in place")
        return {"PhysicalResourceId": event.get("PhysicalResourceId", PHYSICAL_RESOURCE_ID)}
    if request_type == "Update":
        not_ours = rollback_reason(event, migrations_fingerprint())
        if not_ours:
            # Neither up (the new versions, during a rollback) nor down (the old code may still read
            # what they added): nothing that moves the schema, and no database needed to succeed,
            # so the rollback completes instead of ending in UPDATE_ROLLBACK_FAILED.
            logger.warning("custom resource Update not applied: %s", not_ours)
            return {"PhysicalResourceId": PHYSICAL_RESOURCE_ID, "Data": {"Applied": "", "Skipped": not_ours}}
    try:
        # The resource's own properties, not the function's environment: during a rollback they are
        # the ones being restored, whichever configuration the function has at that moment.
        missing_rows = event.get("ResourceProperties", {}).get("IngestMissingRows")
        report = run_migrations(
            "up",
            waits=waits,
            ingest_deletes=None if missing_rows is None else missing_rows == "delete",
            described=event.get("ResourceProperties", {}),
        )
    except SchemaAhead as ahead:
        if request_type != "Update":
            raise MigrationError(f"schema migration ({request_type}) failed: {ahead}"[:MAX_REASON_CHARS]) from ahead
        # A rollback answered by the code it rolled back to (CloudFormation may put the function's
        # old code back before it rolls this resource back): the rollback must complete, and the
        # schema stays as the newer code left it, as when the newer code answers (above).
        skipped = f"a rollback answered by older code: {ahead}; the schema is left as it is"
        logger.warning("custom resource Update not applied: %s", skipped)
        return {"PhysicalResourceId": PHYSICAL_RESOURCE_ID, "Data": {"Applied": "", "Skipped": skipped}}
    except Exception as error:
        logger.exception("migration failed during %s", request_type)
        # The framework puts this message into the CloudFormation event as the reason.
        message = f"schema migration ({request_type}) failed: {type(error).__name__}: {error}"
        raise MigrationError(message[:MAX_REASON_CHARS]) from error
    logger.info("migrations done", extra=report.as_dict())
    return {
        "PhysicalResourceId": PHYSICAL_RESOURCE_ID,
        "Data": {"CurrentVersion": str(report.current_version), "Applied": ",".join(map(str, report.applied))},
    }


@logger.inject_lambda_context(log_event=False)
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    """Apply, revert or report migrations; the provider framework's request or a manual payload."""
    # Every wait gives up before the function's timeout, so a failure is answered, not timed out.
    waits = MigrationWaits().within(context.get_remaining_time_in_millis() / 1000)
    if is_custom_resource_request(event):
        return on_event(event, waits)
    action, target = parse_manual_payload(event)
    report = run_migrations(action, target, waits)
    logger.info("migrations done", extra=report.as_dict())
    return report.as_dict()
