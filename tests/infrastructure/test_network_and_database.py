"""Private networking, TLS to the database, rotation, and imported resources for staging and prod."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk.assertions import Template

from tests.infrastructure.helpers import logical_id_of_function, only, resources, role_statements


def _function_security_groups(template: Template) -> set[str]:
    groups: set[str] = set()
    for prefix in ("Ingest", "Migrations", "Status"):
        function = resources(template, "AWS::Lambda::Function")[logical_id_of_function(template, prefix)]
        groups |= {group["Fn::GetAtt"][0] for group in function["Properties"]["VpcConfig"]["SecurityGroupIds"]}
    return groups


def test_created_database_requires_tls_and_is_private_and_encrypted(dev_template: Template) -> None:
    # Given the dev stack, which creates its database
    # When reading the instance and its parameter group
    _, instance = only(dev_template, "AWS::RDS::DBInstance")
    _, parameters = only(dev_template, "AWS::RDS::DBParameterGroup")
    # Then plain TCP is refused server-side, and the instance is private and encrypted
    assert parameters["Properties"]["Parameters"]["require_secure_transport"] == "1"
    assert instance["Properties"]["PubliclyAccessible"] is False
    assert instance["Properties"]["StorageEncrypted"] is True


def test_created_database_secrets_all_rotate(dev_template: Template) -> None:
    # Given the dev stack, which creates the database and so owns every secret
    admin_secret_id, _ = only(dev_template, "AWS::SecretsManager::SecretTargetAttachment")
    ingest_secret_id, _ = only(dev_template, "AWS::SecretsManager::Secret", "IngestSecret")
    status_secret_id, _ = only(dev_template, "AWS::SecretsManager::Secret", "StatusSecret")
    # When reading the rotation schedules
    schedules = resources(dev_template, "AWS::SecretsManager::RotationSchedule").values()
    # Then the administrator's, the ingest account's and the status account's secrets rotate every 30 days
    rotated = {schedule["Properties"]["SecretId"]["Ref"] for schedule in schedules}
    assert rotated == {admin_secret_id, ingest_secret_id, status_secret_id}
    for schedule in schedules:
        assert schedule["Properties"]["RotationRules"] == {"ScheduleExpression": "rate(30 days)"}


@pytest.mark.parametrize(("secret_name", "account"), [("IngestSecret", "upsell_ingest"), ("StatusSecret", "upsell_status")])
def test_account_secrets_name_their_account_and_where_the_database_is(
    synthesize: Callable[[str], Template], secret_name: str, account: str
) -> None:
    # Given staging, whose imported database's endpoint is in cdk.json
    template = synthesize("staging")
    # When reading the account secret's template
    _, secret = only(template, "AWS::SecretsManager::Secret", secret_name)
    generated = secret["Properties"]["GenerateSecretString"]
    # Then it is in the RDS format for the account its migration (0006, 0014) creates, with a
    # generated password, and asks the rotation function for TLS without a plaintext fallback
    assert json.loads(generated["SecretStringTemplate"]) == {
        "engine": "mariadb",
        "username": account,
        "host": "shared-mariadb-staging.abcdefghijkl.eu-west-1.rds.amazonaws.com",
        "port": 3306,
        "dbname": "upsell_signals",
        "ssl": True,
    }
    assert generated["GenerateStringKey"] == "password"


def test_every_rotation_leaves_out_the_characters_the_first_password_leaves_out(dev_template: Template) -> None:
    # Given dev's three rotated secrets: each first password generated without quoting hazards
    generated = [
        secret["Properties"]["GenerateSecretString"]["ExcludeCharacters"]
        for secret in resources(dev_template, "AWS::SecretsManager::Secret").values()
    ]
    # When reading what each rotation function is told to leave out of the passwords it generates
    rotations = resources(dev_template, "AWS::Serverless::Application")
    # Then every later password leaves out the same characters as the first
    assert len(rotations) == 3 and len(set(generated)) == 1
    for logical_id, rotation in rotations.items():
        assert rotation["Properties"]["Parameters"].get("excludeCharacters") == generated[0], logical_id


def test_secret_rotation_waits_for_the_migration(dev_template: Template) -> None:
    # Given the dev stack (a rotation starts as soon as its schedule exists)
    schema_id, _ = only(dev_template, "Custom::SchemaMigrations")
    # When reading what the rotation functions depend on
    applications = resources(dev_template, "AWS::Serverless::Application")
    # Then all three wait for the migration: it creates the accounts and sets their passwords first
    assert len(applications) == 3
    for application in applications.values():
        assert schema_id in application.get("DependsOn", [])


def test_database_port_is_open_only_to_our_functions_and_the_rotation(dev_template: Template) -> None:
    # Given the dev stack
    database_group_id, _ = only(dev_template, "AWS::EC2::SecurityGroup", "DatabaseSecurityGroup")
    rotation_groups = {key for key in resources(dev_template, "AWS::EC2::SecurityGroup") if "Rotation" in key}
    # When collecting every ingress rule into the database's security group
    sources = {
        rule["Properties"]["SourceSecurityGroupId"]["Fn::GetAtt"][0]
        for rule in resources(dev_template, "AWS::EC2::SecurityGroupIngress").values()
        if rule["Properties"]["GroupId"] == {"Fn::GetAtt": [database_group_id, "GroupId"]}
    }
    # Then only the three functions and the rotation functions may connect
    assert sources == _function_security_groups(dev_template) | rotation_groups


def test_created_vpc_uses_endpoints_instead_of_nat(dev_template: Template) -> None:
    # Given the dev stack
    # When listing NAT gateways and endpoints
    services = [endpoint["Properties"]["ServiceName"] for endpoint in resources(dev_template, "AWS::EC2::VPCEndpoint").values()]
    rendered = str(services)
    # Then there is no NAT and the S3, Secrets Manager, SQS and Lambda endpoints exist
    dev_template.resource_count_is("AWS::EC2::NatGateway", 0)
    dev_template.resource_count_is("AWS::EC2::InternetGateway", 0)
    for service in (".s3", ".secretsmanager", ".sqs", ".lambda"):
        assert service in rendered, service


# Called by the Lambda service or from outside the VPC, never by the function's own code: logs and
# X-Ray are shipped by Lambda, the ENI actions are Lambda's own, a key used via S3 or Secrets
# Manager (kms:ViaService) is called by that service.
NOT_CALLED_FROM_THE_VPC = {"logs", "xray", "ec2"}


def test_every_service_a_function_may_call_has_an_endpoint_in_the_isolated_subnets(dev_template: Template) -> None:
    # Given dev's VPC: isolated subnets, no NAT, so a call reaches only a service with an endpoint:
    # the S3 gateway, or an interface endpoint with private DNS (the SDKs' default host names
    # resolve to it) whose security group admits the caller on 443
    endpoints = resources(dev_template, "AWS::EC2::VPCEndpoint").values()
    admitted = {
        (rule["Properties"]["GroupId"]["Fn::GetAtt"][0], rule["Properties"]["SourceSecurityGroupId"]["Fn::GetAtt"][0])
        for rule in resources(dev_template, "AWS::EC2::SecurityGroupIngress").values()
        if rule["Properties"]["FromPort"] == 443 == rule["Properties"]["ToPort"] and "SourceSecurityGroupId" in rule["Properties"]
    }
    for prefix in ("Ingest", "Migrations", "Status"):
        function = resources(dev_template, "AWS::Lambda::Function")[logical_id_of_function(dev_template, prefix)]
        [group] = [group["Fn::GetAtt"][0] for group in function["Properties"]["VpcConfig"]["SecurityGroupIds"]]
        reachable = {
            _service_of(endpoint["Properties"]["ServiceName"])
            for endpoint in endpoints
            if endpoint["Properties"].get("VpcEndpointType") == "Gateway"
            or (
                endpoint["Properties"].get("PrivateDnsEnabled") is True
                and any((endpoint_group["Fn::GetAtt"][0], group) in admitted for endpoint_group in endpoint["Properties"]["SecurityGroupIds"])
            )
        }
        # When listing the services its role lets its code call (the durable SDK's checkpoints included)
        called = {
            action.split(":")[0]
            for action, _, condition in role_statements(dev_template, function["Properties"]["Role"]["Fn::GetAtt"][0])
            if not (condition and "kms:ViaService" in json.dumps(condition))
        } - NOT_CALLED_FROM_THE_VPC
        # Then each has an endpoint it may reach: without one, the call hangs until its timeout
        # (the ingest's checkpoints on Lambda's API, every run)
        assert called and called <= reachable, (prefix, called - reachable)


def _service_of(service_name: Any) -> str:
    """`com.amazonaws.<region>.<service>`, written out or joined from the region: the service."""
    parts = service_name["Fn::Join"][1] if isinstance(service_name, dict) else [service_name]
    return str(parts[-1]).rsplit(".", 1)[-1]


def test_functions_run_in_the_private_subnets(dev_template: Template) -> None:
    # Given the dev stack
    subnets = set(resources(dev_template, "AWS::EC2::Subnet"))
    # When reading each function's VPC configuration
    for prefix in ("Ingest", "Migrations"):
        function = resources(dev_template, "AWS::Lambda::Function")[logical_id_of_function(dev_template, prefix)]
        used = {subnet["Ref"] for subnet in function["Properties"]["VpcConfig"]["SubnetIds"]}
        # Then they use the VPC's (isolated) subnets
        assert used and used <= subnets and all("private" in name.lower() for name in used), used


def test_staging_imports_bucket_vpc_and_database(synthesize: Callable[[str], Template]) -> None:
    # Given staging, which imports everything
    template = synthesize("staging")
    # When counting created resources
    # Then it creates no bucket, VPC or database, and opens the imported database's group to our functions
    # and to the rotations of the ingest and status secrets (the secrets it owns)
    for resource_type in ("AWS::S3::Bucket", "AWS::EC2::VPC", "AWS::RDS::DBInstance"):
        template.resource_count_is(resource_type, 0)
    ingest_secret_id, _ = only(template, "AWS::SecretsManager::Secret", "IngestSecret")
    template.resource_count_is("AWS::SecretsManager::Secret", 2)
    rules = [
        rule["Properties"]
        for rule in resources(template, "AWS::EC2::SecurityGroupIngress").values()
        if rule["Properties"]["GroupId"] == "sg-0123456789abcdef0"
    ]
    rotation_groups = {key for key in resources(template, "AWS::EC2::SecurityGroup") if "Rotation" in key}
    assert len(rotation_groups) == 2  # the ingest and status secrets'; the administrator's is not ours to rotate
    sources = {rule["SourceSecurityGroupId"]["Fn::GetAtt"][0] for rule in rules}
    assert sources == _function_security_groups(template) | rotation_groups
    assert all(rule["FromPort"] == rule["ToPort"] == 3306 for rule in rules)
    ingest = resources(template, "AWS::Lambda::Function")[logical_id_of_function(template, "Ingest")]["Properties"]
    assert ingest["VpcConfig"]["SubnetIds"] == ["subnet-0aa11bb22cc33dd44", "subnet-0ee55ff66aa77bb88"]
    migrate = resources(template, "AWS::Lambda::Function")[logical_id_of_function(template, "Migrations")]["Properties"]
    admin_secret = "arn:aws:secretsmanager:eu-west-1:222222222222:secret:upsell-signals/staging/db-AbCdEf"
    assert migrate["Environment"]["Variables"]["DB_SECRET_ARN"] == admin_secret
    assert ingest["Environment"]["Variables"]["DB_SECRET_ARN"] == {"Ref": ingest_secret_id}


def test_prod_uses_the_vpc_own_endpoints_when_told_to(synthesize: Callable[[str], Template]) -> None:
    # Given prod, whose imported VPC already has its endpoints (createEndpoints false)
    template = synthesize("prod")
    # When counting endpoints
    # Then none is created (a second Secrets Manager endpoint with private DNS would fail to deploy)
    template.resource_count_is("AWS::EC2::VPCEndpoint", 0)


def test_endpoints_admit_only_our_functions_and_the_rotation(dev_template: Template) -> None:
    # Given the dev stack
    endpoint_group_id, _ = only(dev_template, "AWS::EC2::SecurityGroup", "EndpointSecurityGroup")
    rotation_groups = {key for key in resources(dev_template, "AWS::EC2::SecurityGroup") if "Rotation" in key}
    # When collecting every ingress rule into the interface endpoints' security group
    rules = [
        rule["Properties"]
        for rule in resources(dev_template, "AWS::EC2::SecurityGroupIngress").values()
        if rule["Properties"]["GroupId"] == {"Fn::GetAtt": [endpoint_group_id, "GroupId"]}
    ]
    # Then HTTPS is open from the three functions and the rotation function (it calls Secrets Manager), nothing else
    assert {rule["SourceSecurityGroupId"]["Fn::GetAtt"][0] for rule in rules} == _function_security_groups(
        dev_template
    ) | rotation_groups
    assert all(rule["FromPort"] == rule["ToPort"] == 443 for rule in rules)
