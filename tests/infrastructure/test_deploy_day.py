"""The first deploy and the year after: logs where the failure message points, the engine's minor versions
followed, existing endpoints opened to the functions, database and rotation alarms."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_cdk.assertions import Template

from tests.infrastructure.helpers import only, resources

FUNCTION_NAMES = {
    "dev": ("upsell-signals-sync-dev", "upsell-signals-migrate-dev", "upsell-signals-status-dev",
            "upsell-signals-migrate-provider-dev"),
}


def test_every_function_logs_to_the_group_lambda_would_name(dev_template: Template) -> None:
    # Given dev: the provider framework's failure reason says "Logs: /aws/lambda/<migrate function>"
    groups = resources(dev_template, "AWS::Logs::LogGroup")
    functions = resources(dev_template, "AWS::Lambda::Function")
    named = {}
    # When following each of our functions to its log group
    for function in functions.values():
        properties = function["Properties"]
        if properties.get("FunctionName") in FUNCTION_NAMES["dev"]:
            group = groups[properties["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"]
            named[properties["FunctionName"]] = group["LogGroupName"]
    # Then each group is /aws/lambda/<function name>, so the message points to a group that exists
    assert named == {name: f"/aws/lambda/{name}" for name in FUNCTION_NAMES["dev"]}


def test_retained_log_groups_go_when_their_create_rolls_back(synthesize: Callable[[str], Template]) -> None:
    # Given prod (removalPolicy retain) with named log groups
    template = synthesize("prod")
    # When reading the log groups' deletion policies
    policies = {group.get("DeletionPolicy") for group in resources(template, "AWS::Logs::LogGroup").values()}
    # Then they outlive updates and stack deletion, but a rolled-back first create removes them,
    # so the next attempt can create the same names again
    assert policies == {"RetainExceptOnCreate"}


def test_created_database_pins_its_major_line_and_follows_minor_versions(dev_template: Template) -> None:
    # Given dev (cdk.json database.engineVersion "10.11")
    _, instance = only(dev_template, "AWS::RDS::DBInstance")
    _, parameters = only(dev_template, "AWS::RDS::DBParameterGroup")
    # When reading the engine settings
    # Then no minor version is named and RDS upgrades minors itself, so no retired minor can break a fresh deploy
    assert instance["Properties"]["EngineVersion"] == "10.11"
    assert instance["Properties"]["AutoMinorVersionUpgrade"] is True
    assert parameters["Properties"]["Family"] == "mariadb10.11"


def test_existing_endpoints_admit_https_from_every_function(synthesize: Callable[[str], Template]) -> None:
    # Given prod, whose VPC has its own endpoints (cdk.json vpc.endpointSecurityGroupIds)
    template = synthesize("prod")
    function_groups = {
        group["Fn::GetAtt"][0]
        for function in resources(template, "AWS::Lambda::Function").values()
        for group in function["Properties"].get("VpcConfig", {}).get("SecurityGroupIds", [])
    }
    rotation_groups = {key for key in resources(template, "AWS::EC2::SecurityGroup") if "Rotation" in key}
    # When collecting the ingress rules this stack adds to the existing endpoint group
    sources = {
        rule["Properties"]["SourceSecurityGroupId"]["Fn::GetAtt"][0]
        for rule in resources(template, "AWS::EC2::SecurityGroupIngress").values()
        if rule["Properties"]["GroupId"] == "sg-0e1e2e3e4e5e6e7e8" and rule["Properties"]["FromPort"] == 443
    }
    # Then HTTPS is admitted from each function and the rotation function
    assert function_groups and sources == function_groups | rotation_groups


def test_ingest_role_is_an_output_for_an_sse_kms_key_policy(synthesize: Callable[[str], Template]) -> None:
    # Given prod, whose bucket is SSE-KMS with another team's key
    template = synthesize("prod")
    # When reading the outputs
    outputs = template.to_json()["Outputs"]
    # Then the ingest role's ARN is there for the key owner's policy
    assert outputs["IngestRoleArn"]["Value"]["Fn::GetAtt"][1] == "Arn"


def test_created_database_alarms_on_free_storage_and_cpu_credits(dev_template: Template) -> None:
    # Given dev (t4g.micro, 20 GiB)
    alarms = {
        alarm["Properties"]["MetricName"]: alarm["Properties"]
        for alarm in resources(dev_template, "AWS::CloudWatch::Alarm").values()
        if "MetricName" in alarm["Properties"]  # not the dead-letter alarm's expression
    }
    topic_id, _ = only(dev_template, "AWS::SNS::Topic")
    # When reading the database's alarms
    storage, credits = alarms["FreeStorageSpace"], alarms["CPUCreditBalance"]
    # Then less than 10% free storage, and a burstable class's credits running low, page the topic
    assert storage["Threshold"] == 20 * 1024**3 * 0.10 and storage["ComparisonOperator"] == "LessThanThreshold"
    assert credits["Threshold"] == 30 and credits["ComparisonOperator"] == "LessThanThreshold"
    for alarm in (storage, credits):
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]


def test_an_imported_database_gets_no_instance_alarms(synthesize: Callable[[str], Template]) -> None:
    # Given staging (imported database, watched by its owner)
    metrics = {alarm["Properties"].get("MetricName") for alarm in resources(synthesize("staging"), "AWS::CloudWatch::Alarm").values()}
    # Then neither storage nor credits are alarmed here
    assert not metrics & {"FreeStorageSpace", "CPUCreditBalance"}


def test_a_failed_rotation_of_any_secret_notifies_the_alarm_topic(dev_template: Template) -> None:
    # Given dev: the administrator's, the ingest account's and the status account's secrets rotate
    _, rule = only(dev_template, "AWS::Events::Rule", "RotationFailed")
    topic_id, _ = only(dev_template, "AWS::SNS::Topic")
    key_id, _ = only(dev_template, "AWS::KMS::Key", "TopicKey")
    pattern = rule["Properties"]["EventPattern"]
    # When reading the rule and the topic key
    # Then Secrets Manager's RotationFailed for exactly our three secrets goes to the alarm topic,
    # and EventBridge may use the topic's key
    assert pattern["source"] == ["aws.secretsmanager"]
    assert pattern["detail-type"] == ["AWS Service Event via CloudTrail"]
    assert pattern["detail"]["eventName"] == ["RotationFailed"]
    rotated = {only(dev_template, "AWS::SecretsManager::Secret", name)[0] for name in ("IngestSecret", "StatusSecret")}
    attached = set(resources(dev_template, "AWS::SecretsManager::SecretTargetAttachment"))
    assert {secret["Ref"] for secret in pattern["detail"]["additionalEventData"]["SecretId"]} == rotated | attached
    [target] = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Ref": topic_id}
    # And it publishes through a role of its own, which may publish to the topic and use its key
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    trust = resources(dev_template, "AWS::IAM::Role")[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [statement["Principal"] for statement in trust] == [{"Service": "events.amazonaws.com"}]
    granted = {
        (action, json.dumps(statement["Resource"]))
        for policy in resources(dev_template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
    assert ("sns:Publish", json.dumps({"Ref": topic_id})) in granted
    assert {action for action, _ in granted} == {"sns:Publish", "kms:Decrypt", "kms:GenerateDataKey*"}
    assert all(key_id in where for action, where in granted if action.startswith("kms:"))


def test_no_service_may_use_the_alarm_topic_or_its_key_for_another_account(dev_template: Template) -> None:
    # Given the alarm topic's policy and its key's policy
    _, key = only(dev_template, "AWS::KMS::Key", "TopicKey")
    statements = list(key["Properties"]["KeyPolicy"]["Statement"])
    for policy in resources(dev_template, "AWS::SNS::TopicPolicy").values():
        statements += policy["Properties"]["PolicyDocument"]["Statement"]
    # When reading the statements that admit an AWS service
    admitting_services = [
        statement
        for statement in statements
        if statement["Effect"] == "Allow" and _admits_a_service_or_anyone(statement.get("Principal", {}))
    ]
    # Then each is conditioned on this account (no confused deputy: a service acting for another
    # account's alarm or rule cannot publish here or use the key)
    assert admitting_services
    for statement in admitting_services:
        assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}, statement


def test_every_alarm_may_publish_to_the_topic_it_notifies_and_use_its_key(dev_template: Template) -> None:
    # Given dev's alarms, its topic policies and the topics' keys
    topics = resources(dev_template, "AWS::SNS::Topic")
    keys = resources(dev_template, "AWS::KMS::Key")
    policies = resources(dev_template, "AWS::SNS::TopicPolicy").values()
    alarms = resources(dev_template, "AWS::CloudWatch::Alarm")
    notified = {action["Ref"] for alarm in alarms.values() for action in alarm["Properties"].get("AlarmActions", [])}
    assert alarms and notified
    for topic_id in notified:
        # When reading what lets CloudWatch publish to the topic (its policy replaces SNS's default,
        # which admitted the account's own alarms) and use the key it is encrypted with
        topic_statements = [
            statement
            for policy in policies
            if {"Ref": topic_id} in policy["Properties"]["Topics"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        ]
        key_id = topics[topic_id]["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
        key_statements = keys[key_id]["Properties"]["KeyPolicy"]["Statement"]
        # Then both admit CloudWatch for this account's alarms
        publish = [s for s in topic_statements if _allows(s, "cloudwatch.amazonaws.com", "sns:Publish")]
        assert publish and publish[0]["Resource"] == {"Ref": topic_id}, topic_statements
        assert publish[0]["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Join"][1][-1] == ":alarm:*"
        for action in ("kms:Decrypt", "kms:GenerateDataKey*"):
            assert any(_allows(s, "cloudwatch.amazonaws.com", action) for s in key_statements), action


def _allows(statement: dict[str, Any], service: str, action: str) -> bool:
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    principal = statement.get("Principal", {})
    return statement["Effect"] == "Allow" and action in actions and isinstance(principal, dict) and principal.get("Service") == service


def _admits_a_service_or_anyone(principal: Any) -> bool:
    return principal == "*" or (isinstance(principal, dict) and ("Service" in principal or principal.get("AWS") == "*"))
