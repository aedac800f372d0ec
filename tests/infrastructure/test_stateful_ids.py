"""The logical ids of the stack's stateful resources are pinned: a renamed or moved construct is a replacement.

CloudFormation deletes a resource whose logical id leaves the template and creates one under the new
id. For these that means: a new database instance (which the fixed DBInstanceIdentifier makes fail),
new secrets (new ARNs and passwords, the running versions' grants gone), a new dead-letter queue (the
waiting messages left in the old one, or deleted with it in dev), new log groups and key, a new
durable function (in-flight executions stranded). A refactor that changes one of these ids must be
a decision: change the pin here, and say in docs/deploy.md what the deploy replaces.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aws_cdk.assertions import Template

STATEFUL_TYPES = (
    "AWS::RDS::DBInstance",
    "AWS::SecretsManager::Secret",
    "AWS::SQS::Queue",
    "AWS::S3::Bucket",
    "AWS::Logs::LogGroup",
    "AWS::KMS::Key",
    "AWS::Lambda::Function",
    "AWS::Lambda::Alias",
    "Custom::SchemaMigrations",
)

COMMON = {
    "DatabaseIngestSecretEEB5FBFB": "AWS::SecretsManager::Secret",
    "DatabaseStatusSecretE5F0E535": "AWS::SecretsManager::Secret",
    "DeadLettersQueue631681B1": "AWS::SQS::Queue",
    "IngestDurableIngestFunction04DB74F7": "AWS::Lambda::Function",
    "IngestDurableIngestLogsB3E14631": "AWS::Logs::LogGroup",
    "IngestLiveF0706163": "AWS::Lambda::Alias",
    "MigrationsMigrateFunction115DE370": "AWS::Lambda::Function",
    "MigrationsMigrateLogs47BA0F11": "AWS::Logs::LogGroup",
    "MigrationsProviderLogs4FBD500B": "AWS::Logs::LogGroup",
    "MigrationsProviderframeworkonEvent15E1BF06": "AWS::Lambda::Function",
    "MigrationsSchema884CDC03": "Custom::SchemaMigrations",
    "MonitoringTopicKey423AF5B2": "AWS::KMS::Key",
    "StatusFunction56EBEB64": "AWS::Lambda::Function",
    "StatusLogsDA3FA913": "AWS::Logs::LogGroup",
}
DEV_ONLY = {
    "DatabaseInstanceAA8A5FDE": "AWS::RDS::DBInstance",
    # CDK's generated administrator secret: its id carries a hash of the password's excluded characters.
    "UpsellSignalsdevDatabaseInstanceSecretD2FE639C3fdaad7efa858a3daf9490cf0a702aeb": "AWS::SecretsManager::Secret",
    "DatabaseErrorLogs89E52477": "AWS::Logs::LogGroup",
    "DatabaseSlowqueryLogs434FBADF": "AWS::Logs::LogGroup",
    "NetworkFlowLogs2BEC3212": "AWS::Logs::LogGroup",
    "SignalsBucket2CC5CB2F": "AWS::S3::Bucket",
    "SignalsAccessLogs08E68587": "AWS::S3::Bucket",
    "CustomS3AutoDeleteObjectsCustomResourceProviderHandler9D90184F": "AWS::Lambda::Function",
}


def _stateful(template: Template) -> dict[str, str]:
    found: dict[str, str] = {}
    for resource_type in STATEFUL_TYPES:
        found.update({logical_id: resource_type for logical_id in template.find_resources(resource_type)})
    return found


@pytest.mark.parametrize(("environment", "expected"), [("dev", {**COMMON, **DEV_ONLY}), ("prod", COMMON)])
def test_stateful_resources_keep_their_logical_ids(
    synthesize: Callable[[str], Template], environment: str, expected: dict[str, str]
) -> None:
    # Given an environment's template
    template = synthesize(environment)
    # When listing its stateful resources by logical id
    found = _stateful(template)
    # Then they are exactly the pinned ones: none renamed (a replacement), none added or dropped unnoticed
    assert found == expected, (
        f"stateful logical ids changed: gone {sorted(set(expected) - set(found))}, new {sorted(set(found) - set(expected))}; "
        "a new id is a replacement at the next deploy (see this module's docstring)"
    )


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_no_stateful_resource_has_a_name_that_would_block_or_force_its_replacement(
    synthesize: Callable[[str], Template], environment: str
) -> None:
    # Given an environment's template
    template = synthesize(environment)
    # When reading the create-only name properties of the queue and the secrets
    queues = template.find_resources("AWS::SQS::Queue")
    secrets = template.find_resources("AWS::SecretsManager::Secret")
    # Then none is set: a name given later (or changed) replaces the queue (its messages) or the secret (its ARN)
    assert all("QueueName" not in queue["Properties"] and "FifoQueue" not in queue["Properties"] for queue in queues.values())
    assert all("Name" not in secret.get("Properties", {}) for secret in secrets.values())
