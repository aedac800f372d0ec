"""Migrations run at deploy through a custom resource, before the ingest can receive any event."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from aws_cdk.assertions import Template

from functions.migrate.fingerprint import migrations_fingerprint
from tests.infrastructure.helpers import logical_id_of_function, only, resources, role_statements

CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"


def _provider_framework_id(template: Template) -> str:
    found = [key for key in resources(template, "AWS::Lambda::Function") if key.startswith("MigrationsProviderframeworkonEvent")]
    assert len(found) == 1, found
    return found[0]


def test_migrate_custom_resource_goes_through_the_cdk_provider_framework(dev_template: Template) -> None:
    # Given the dev stack
    # When reading the schema custom resource and the function behind its service token
    _, schema = only(dev_template, "Custom::SchemaMigrations")
    framework_id = _provider_framework_id(dev_template)
    framework = resources(dev_template, "AWS::Lambda::Function")[framework_id]["Properties"]
    # Then CloudFormation talks to the provider framework, which invokes the migrate function
    assert schema["Properties"]["ServiceToken"] == {"Fn::GetAtt": [framework_id, "Arn"]}
    migrate_id = logical_id_of_function(dev_template, "Migrations")
    assert framework["Environment"]["Variables"]["USER_ON_EVENT_FUNCTION_ARN"] == {"Fn::GetAtt": [migrate_id, "Arn"]}
    handler = resources(dev_template, "AWS::Lambda::Function")[migrate_id]["Properties"]["Handler"]
    assert handler == "functions.migrate.handler.handler"
    # And the framework runs outside the VPC, so it reaches CloudFormation's response URL without an endpoint
    assert "VpcConfig" not in framework


def test_a_hung_migration_fails_the_deploy_within_minutes(dev_template: Template) -> None:
    # Given the dev stack
    # When reading the custom resource's timeout and the migrate function's
    _, schema = only(dev_template, "Custom::SchemaMigrations")
    migrate = resources(dev_template, "AWS::Lambda::Function")[logical_id_of_function(dev_template, "Migrations")]
    # Then CloudFormation waits ten minutes at most (not its default hour), longer than the migration may run
    assert int(schema["Properties"]["ServiceTimeout"]) == 600
    assert migrate["Properties"]["Timeout"] == 300 < int(schema["Properties"]["ServiceTimeout"])


def test_the_migration_is_never_retried_by_lambda(dev_template: Template) -> None:
    # Given the dev stack
    framework_id = _provider_framework_id(dev_template)
    migrate_id = logical_id_of_function(dev_template, "Migrations")
    # When reading the async-invoke configs (CloudFormation invokes the framework asynchronously)
    retries = {
        config["Properties"]["FunctionName"]["Ref"]: config["Properties"]["MaximumRetryAttempts"]
        for config in resources(dev_template, "AWS::Lambda::EventInvokeConfig").values()
    }
    # Then neither the framework nor the migrate function is retried into a second `up`
    assert retries[framework_id] == 0
    assert retries[migrate_id] == 0


def test_provider_framework_role_may_only_log_and_invoke_the_migrate_function(dev_template: Template) -> None:
    # Given the dev stack
    framework = resources(dev_template, "AWS::Lambda::Function")[_provider_framework_id(dev_template)]["Properties"]
    role_id = framework["Role"]["Fn::GetAtt"][0]
    migrate_id = logical_id_of_function(dev_template, "Migrations")
    # When reading the framework role's statements and managed policies
    statements = {(action, resource) for action, resource, _ in role_statements(dev_template, role_id)}
    role = resources(dev_template, "AWS::IAM::Role")[role_id]["Properties"]
    # Then it writes its own log group and invokes (waiting until active) the migrate function, nothing else
    log_group_id = framework["LoggingConfig"]["LogGroup"]["Ref"]
    assert statements == {
        ("logs:CreateLogStream", f"GetAtt:{log_group_id}.Arn"),
        ("logs:PutLogEvents", f"GetAtt:{log_group_id}.Arn"),
        ("lambda:InvokeFunction", f"GetAtt:{migrate_id}.Arn"),
        ("lambda:InvokeFunction", f"Join:GetAtt:{migrate_id}.Arn:*"),
        ("lambda:GetFunction", f"GetAtt:{migrate_id}.Arn"),
    }
    assert "ManagedPolicyArns" not in role


def test_migrate_reruns_when_migrations_change(dev_template: Template) -> None:
    # Given the dev stack
    # When reading the custom resource's properties
    _, schema = only(dev_template, "Custom::SchemaMigrations")
    # Then it carries the fingerprint of migrations/, so a changed file makes CloudFormation send Update
    assert schema["Properties"]["MigrationsFingerprint"] == migrations_fingerprint()


def test_fingerprint_changes_when_a_migration_is_added_or_edited(tmp_path: Path) -> None:
    # Given a migrations folder and its fingerprint
    (tmp_path / "0001_a.up.sql").write_text("CREATE TABLE a (id INT);")
    before = migrations_fingerprint(tmp_path)
    # When a file is edited, then when one is added
    (tmp_path / "0001_a.up.sql").write_text("CREATE TABLE a (id BIGINT);")
    edited = migrations_fingerprint(tmp_path)
    (tmp_path / "0002_b.up.sql").write_text("CREATE TABLE b (id INT);")
    added = migrations_fingerprint(tmp_path)
    # Then each change gives a new fingerprint
    assert len({before, edited, added}) == 3


def test_ingest_event_sources_wait_for_the_migration(dev_template: Template) -> None:
    # Given the dev stack
    schema_id, _ = only(dev_template, "Custom::SchemaMigrations")
    # When reading what the file-arrival rule and the schedule depend on
    _, rule = only(dev_template, "AWS::Events::Rule", "FileArrivals")
    _, schedule = only(dev_template, "AWS::Scheduler::Schedule")
    # Then both are created only after the schema migration succeeded
    assert schema_id in rule.get("DependsOn", [])
    assert schema_id in schedule.get("DependsOn", [])


def test_new_ingest_and_status_code_goes_live_only_after_the_migration(dev_template: Template) -> None:
    # Given the dev stack
    schema_id, _ = only(dev_template, "Custom::SchemaMigrations")
    # When reading what the ingest's alias (every trigger's target) and the status function depend on
    _, alias = only(dev_template, "AWS::Lambda::Alias")
    status_id = logical_id_of_function(dev_template, "Status")
    status = resources(dev_template, "AWS::Lambda::Function")[status_id]
    # Then both move to the new code only once the schema migration succeeded
    assert schema_id in alias.get("DependsOn", [])
    assert schema_id in status.get("DependsOn", [])
    # And the status role's grants move with it: the old function keeps reading the secret it
    # connects with until the migration has provisioned the account of the new one
    role_id = status["Properties"]["Role"]["Fn::GetAtt"][0]
    policies = [
        policy for policy in resources(dev_template, "AWS::IAM::Policy").values() if {"Ref": role_id} in policy["Properties"]["Roles"]
    ]
    assert policies and all(schema_id in policy.get("DependsOn", []) for policy in policies)


def test_every_published_version_of_the_ingest_is_kept_by_later_deploys(dev_template: Template) -> None:
    # Given the ingest's version, which its alias and every durable execution started through it run on
    versions = resources(dev_template, "AWS::Lambda::Version")
    # When reading what a deploy that publishes the next version does to this one
    # Then CloudFormation leaves it in Lambda (an execution started before the deploy resumes on it
    # after each pause, for up to its 3-day timeout) rather than deleting it in cleanup
    assert versions
    for logical_id, version in versions.items():
        assert (version.get("DeletionPolicy"), version.get("UpdateReplacePolicy")) == ("Retain", "Retain"), logical_id


def test_migration_waits_for_the_database_and_the_endpoints(dev_template: Template) -> None:
    # Given the dev stack
    # When reading what the schema custom resource depends on
    _, schema = only(dev_template, "Custom::SchemaMigrations")
    depends_on = schema.get("DependsOn", [])
    # Then the database instance and the Secrets Manager endpoint exist before it runs
    database_id, _ = only(dev_template, "AWS::RDS::DBInstance")
    assert database_id in depends_on
    endpoints = [key for key in resources(dev_template, "AWS::EC2::VPCEndpoint") if "SecretsManager" in key]
    assert endpoints and set(endpoints) <= set(depends_on)


def test_migrate_knows_the_account_secrets_and_reruns_when_one_is_replaced(dev_template: Template) -> None:
    # Given the dev stack
    ingest_secret_id, _ = only(dev_template, "AWS::SecretsManager::Secret", "IngestSecret")
    status_secret_id, _ = only(dev_template, "AWS::SecretsManager::Secret", "StatusSecret")
    migrate_id = logical_id_of_function(dev_template, "Migrations")
    # When reading the migrate function's environment and the custom resource
    variables = resources(dev_template, "AWS::Lambda::Function")[migrate_id]["Properties"]["Environment"]["Variables"]
    _, schema = only(dev_template, "Custom::SchemaMigrations")
    # Then migrate provisions the ingest and status accounts from those secrets, and a new secret sends Update
    assert variables["INGEST_DB_SECRET_ARN"] == {"Ref": ingest_secret_id}
    assert schema["Properties"]["IngestSecretArn"] == {"Ref": ingest_secret_id}
    assert variables["STATUS_DB_SECRET_ARN"] == {"Ref": status_secret_id}
    assert schema["Properties"]["StatusSecretArn"] == {"Ref": status_secret_id}
    # And it knows whether the ingest deletes missing rows (its account may delete only then), and
    # a change of that setting sends Update too
    assert variables["MISSING_ROWS"] == schema["Properties"]["IngestMissingRows"] == "keep"


def test_a_new_password_in_the_same_account_secret_sends_the_migration_an_update(
    synthesize: Callable[[str], Template], tmp_path: Path
) -> None:
    # Given staging's account secrets (CloudFormation generates a new password whenever its generator
    # changes, a field of the template beside the password included: cloudformation-coverage-roadmap
    # #2210, aws-cdk #19985) and the custom resource's properties
    template = synthesize("staging")
    _, schema = only(template, "Custom::SchemaMigrations")
    moved = _staging_template_with_endpoint("moved-mariadb.abcdefghijkl.eu-west-1.rds.amazonaws.com", tmp_path)
    _, moved_schema = only(moved, "Custom::SchemaMigrations")
    for account in ("Ingest", "Status"):
        _, secret = only(template, "AWS::SecretsManager::Secret", f"{account}Secret")
        generator = f"{account}SecretGenerator"
        # Then the resource carries each whole generator, so a change to any of it sends Update and
        # the migration provisions the new password
        assert schema["Properties"][generator] == secret["Properties"]["GenerateSecretString"], account
        # And a moved endpoint (an imported server's new address) changes both
        assert "moved-mariadb" in json.dumps(moved_schema["Properties"][generator]), account
        assert moved_schema["Properties"][generator] != schema["Properties"][generator], account


def _staging_template_with_endpoint(endpoint: str, tmp_path: Path) -> Template:
    from app import build_app

    environments = json.loads(CDK_JSON.read_text())["context"]["environments"]
    environments["staging"]["database"]["endpoint"] = endpoint
    app = build_app({"env": "staging", "environments": environments}, outdir=str(tmp_path / "cdk-staging-moved"))  # type: ignore[dict-item]
    return Template.from_stack(app.node.find_child("UpsellSignals-staging"))  # type: ignore[arg-type]
