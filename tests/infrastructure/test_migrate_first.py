"""Migrations run at deploy through a custom resource, before the ingest can receive any event."""

from __future__ import annotations

from pathlib import Path

from aws_cdk.assertions import Template

from infra.constructs.code import migrations_fingerprint
from tests.infrastructure.helpers import logical_id_of_function, only, resources


def test_migrate_custom_resource_calls_the_migrate_function_directly(dev_template: Template) -> None:
    # Given the dev stack
    # When reading the schema custom resource
    _, schema = only(dev_template, "Custom::SchemaMigrations")
    # Then its service token is the migrate function (it answers CloudFormation itself)
    migrate_id = logical_id_of_function(dev_template, "Migrations")
    assert schema["Properties"]["ServiceToken"] == {"Fn::GetAtt": [migrate_id, "Arn"]}
    handler = resources(dev_template, "AWS::Lambda::Function")[migrate_id]["Properties"]["Handler"]
    assert handler == "functions.migrate.handler.handler"


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
    # When reading what the S3 notification and the schedule depend on
    _, notifications = only(dev_template, "Custom::S3BucketNotifications")
    _, schedule = only(dev_template, "AWS::Scheduler::Schedule")
    # Then both are created only after the schema migration succeeded
    assert schema_id in notifications.get("DependsOn", [])
    assert schema_id in schedule.get("DependsOn", [])


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


def test_migrate_knows_the_ingest_secret_and_reruns_when_it_is_replaced(dev_template: Template) -> None:
    # Given the dev stack
    ingest_secret_id, _ = only(dev_template, "AWS::SecretsManager::Secret", "IngestSecret")
    migrate_id = logical_id_of_function(dev_template, "Migrations")
    # When reading the migrate function's environment and the custom resource
    variables = resources(dev_template, "AWS::Lambda::Function")[migrate_id]["Properties"]["Environment"]["Variables"]
    _, schema = only(dev_template, "Custom::SchemaMigrations")
    # Then migrate provisions the ingest account from that secret, and a new secret sends Update
    assert variables["INGEST_DB_SECRET_ARN"] == {"Ref": ingest_secret_id}
    assert schema["Properties"]["IngestSecretArn"] == {"Ref": ingest_secret_id}
