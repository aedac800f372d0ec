"""Least privilege: each function role holds exactly the statements the issue lists, nothing wider."""

from __future__ import annotations

from collections.abc import Callable

from aws_cdk.assertions import Template

from infra.constructs.vpc_function import VPC_ENI_ACTIONS
from tests.infrastructure.helpers import logical_id_of_function, only, resources, role_statements

XRAY_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
WILDCARD_ALLOWED = set(VPC_ENI_ACTIONS) | XRAY_ACTIONS  # no resource-level permissions exist for these


def _role_of(template: Template, function_prefix: str) -> str:
    function = resources(template, "AWS::Lambda::Function")[logical_id_of_function(template, function_prefix)]
    return str(function["Properties"]["Role"]["Fn::GetAtt"][0])


def _statements(template: Template, function_prefix: str) -> set[tuple[str, str]]:
    return {(action, target) for action, target, _ in role_statements(template, _role_of(template, function_prefix))}


def test_ingest_role_is_exactly_get_object_on_prefix_own_secret_dlq_send_and_logs(dev_template: Template) -> None:
    # Given the dev stack
    bucket_id, _ = only(dev_template, "AWS::S3::Bucket", "SignalsBucket")
    queue_id, _ = only(dev_template, "AWS::SQS::Queue")
    ingest_secret_id, _ = only(dev_template, "AWS::SecretsManager::Secret", "IngestSecret")
    log_group_id = next(key for key in resources(dev_template, "AWS::Logs::LogGroup") if key.startswith("IngestDurableIngestLogs"))
    # When flattening the ingest role's statements
    statements = _statements(dev_template, "Ingest")
    # Then they are exactly these, and the only "*" resources are the ENI and X-Ray actions
    expected = {
        ("s3:GetObject", f"Join:GetAtt:{bucket_id}.Arn/passive_upsell_signals/*"),
        ("secretsmanager:GetSecretValue", f"Ref:{ingest_secret_id}"),
        ("sqs:SendMessage", f"GetAtt:{queue_id}.Arn"),
        ("logs:CreateLogStream", f"GetAtt:{log_group_id}.Arn"),
        ("logs:PutLogEvents", f"GetAtt:{log_group_id}.Arn"),
        # The durable SDK's checkpoints, on this function's qualified ARNs only.
        *((action, "Join:arn:aws:lambda:eu-west-1:Ref:AWS::AccountId:function:upsell-signals-sync-dev:*") for action in (
            "lambda:CheckpointDurableExecution", "lambda:GetDurableExecutionState"
        )),
    } | {(action, "*") for action in WILDCARD_ALLOWED}
    assert statements == expected


def test_migrate_role_reads_the_admin_and_account_secrets_and_writes_its_logs_only(dev_template: Template) -> None:
    # Given the dev stack
    admin_secret_id, _ = only(dev_template, "AWS::SecretsManager::SecretTargetAttachment")
    ingest_secret_id, _ = only(dev_template, "AWS::SecretsManager::Secret", "IngestSecret")
    status_secret_id, _ = only(dev_template, "AWS::SecretsManager::Secret", "StatusSecret")
    # When flattening the migrate role's statements
    statements = _statements(dev_template, "Migrations")
    # Then it has no S3 or SQS access at all, and reads exactly the three secrets (DDL, then the
    # passwords of the ingest and status accounts)
    services = {action.split(":")[0] for action, _ in statements}
    assert services == {"secretsmanager", "logs", "ec2", "xray"}
    assert {item for item in statements if item[0].startswith("secretsmanager:")} == {
        ("secretsmanager:GetSecretValue", f"Ref:{admin_secret_id}"),
        ("secretsmanager:GetSecretValue", f"Ref:{ingest_secret_id}"),
        ("secretsmanager:GetSecretValue", f"Ref:{status_secret_id}"),
    }


def test_function_roles_use_no_aws_managed_policies(dev_template: Template) -> None:
    # Given the dev stack
    # When reading the function roles
    roles = resources(dev_template, "AWS::IAM::Role")
    for prefix in ("Ingest", "Migrations", "Status"):
        role = roles[_role_of(dev_template, prefix)]
        # Then neither carries a managed policy (AWSLambdaBasicExecutionRole would allow logs on every group)
        assert "ManagedPolicyArns" not in role["Properties"], prefix


def test_imported_bucket_with_kms_key_gets_decrypt_via_s3_only(synthesize: Callable[[str], Template]) -> None:
    # Given prod, which imports a bucket encrypted with a customer key
    template = synthesize("prod")
    # When reading the ingest role's statements with their conditions
    statements = role_statements(template, _role_of(template, "Ingest"))
    # Then GetObject names the imported bucket's prefix and kms:Decrypt is limited to that key through S3
    assert ("s3:GetObject", "arn:aws:s3:::acme-data-prod-exports/passive_upsell_signals/*", None) in statements
    decrypts = [(target, condition) for action, target, condition in statements if action == "kms:Decrypt"]
    assert (
        "arn:aws:kms:eu-west-1:333333333333:key/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
        {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}},
    ) in decrypts


def test_imported_admin_secret_is_read_by_migrate_only_with_kms_via_secrets_manager(
    synthesize: Callable[[str], Template],
) -> None:
    # Given prod, whose imported administrator secret is encrypted with a customer key
    template = synthesize("prod")
    admin_secret = "arn:aws:secretsmanager:eu-west-1:333333333333:secret:upsell-signals/prod/db-XyZ123"
    decrypt = (
        "kms:Decrypt",
        "arn:aws:kms:eu-west-1:333333333333:key/1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
        {"StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}},
    )
    # When reading each function role's statements
    migrate = role_statements(template, _role_of(template, "Migrations"))
    ingest = role_statements(template, _role_of(template, "Ingest"))
    # Then migrate reads it and decrypts with its key only through Secrets Manager; the ingest does neither
    assert ("secretsmanager:GetSecretValue", admin_secret, None) in migrate
    assert decrypt in migrate
    assert ("secretsmanager:GetSecretValue", admin_secret, None) not in ingest
    assert not [statement for statement in ingest if statement[0].startswith("kms:") and "secretsmanager" in str(statement[2])]
