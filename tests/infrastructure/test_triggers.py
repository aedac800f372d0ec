"""The ways into the ingest: S3 events through EventBridge, the 06:00 UTC schedule, async retries and the DLQ."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk import aws_events as events
from aws_cdk.assertions import Match, Template
from moto.events.models import EventPattern

from functions.shared.contract import HEARTBEATS_PER_LEASE, LAMBDA_FIRST_RETRY_SECONDS
from functions.shared.environment import INGEST_DEPLOYED_VARIABLES
from functions.shared.settings import load_environment_name, load_ingest_settings
from infra.constructs.ingest import object_created_pattern
from tests.infrastructure.helpers import logical_id_of_function, only, resources

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_file_arrivals_reach_the_ingest_through_an_eventbridge_rule(dev_template: Template) -> None:
    # Given the dev stack
    queue_id, _ = only(dev_template, "AWS::SQS::Queue")
    # When reading the file-arrival rule
    _, rule = only(dev_template, "AWS::Events::Rule", "FileArrivals")
    # Then its one target is the ingest, with bounded delivery retries and the DLQ for what cannot be delivered
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Ref": only(dev_template, "AWS::Lambda::Alias")[0]}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 6 * 3600, "MaximumRetryAttempts": 2}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}


def test_created_bucket_sends_its_events_to_eventbridge_without_a_notification_custom_resource(
    dev_template: Template,
) -> None:
    # Given the dev stack, which creates its bucket
    bucket_id, bucket = only(dev_template, "AWS::S3::Bucket", "SignalsBucket")
    # When reading the bucket and the custom resources
    # Then EventBridge delivery is on in the bucket's own properties, with no Lambda rewriting its configuration
    assert bucket["Properties"]["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    assert resources(dev_template, "Custom::S3BucketNotifications") == {}
    _, rule = only(dev_template, "AWS::Events::Rule", "FileArrivals")
    assert rule["Properties"]["EventPattern"]["detail"]["bucket"]["name"] == [{"Ref": bucket_id}]


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_imported_bucket_is_subscribed_by_rule_and_its_notifications_left_alone(
    environment: str, synthesize: Callable[[str], Template]
) -> None:
    # Given an environment that imports a bucket another team owns
    template = synthesize(environment)
    bucket_name = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]["environments"][environment]["bucket"]["name"]
    # When reading its resources
    # Then nothing writes the bucket's notification configuration, and a rule listens for that bucket
    assert resources(template, "Custom::S3BucketNotifications") == {}
    assert resources(template, "AWS::S3::Bucket") == {}
    _, rule = only(template, "AWS::Events::Rule", "FileArrivals")
    assert rule["Properties"]["EventPattern"]["detail"]["bucket"]["name"] == [bucket_name]


def _matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge's matching of an event against a rule pattern, as moto emulates it (wildcards included)."""
    return EventPattern.load(json.dumps(pattern)).matches_event(event)


def _sample_event(key: str, bucket: str = "acme-data-prod-exports") -> dict[str, Any]:
    """events/eventbridge-s3-object-created.json (as S3 sends it) for another bucket or key."""
    event: dict[str, Any] = json.loads((REPO_ROOT / "events" / "eventbridge-s3-object-created.json").read_text())
    event["detail"]["bucket"]["name"] = bucket
    event["resources"] = [f"arn:aws:s3:::{bucket}"]
    event["detail"]["object"]["key"] = key
    return event


@pytest.mark.parametrize(
    ("bucket", "key", "matches"),
    [
        ("acme-data-prod-exports", "passive_upsell_signals/dt=2026-01-30/data.parquet", True),
        ("acme-data-prod-exports", "passive_upsell_signals/dt%3D2026-01-30/data.parquet", True),
        ("acme-data-prod-exports", "other_export/dt=2026-01-30/data.parquet", False),
        ("acme-data-prod-exports", "archive/passive_upsell_signals/dt=2026-01-30/data.parquet", False),
        ("acme-data-prod-exports", "passive_upsell_signals/dt=2026-01-30/data.parquet.tmp", False),
        ("acme-data-prod-exports", "passive_upsell_signals/dt=2026-01-30/_SUCCESS", False),
        ("someone-elses-bucket", "passive_upsell_signals/dt=2026-01-30/data.parquet", False),
    ],
)
def test_rule_pattern_matches_the_daily_files_of_its_bucket_only(
    bucket: str, key: str, matches: bool, synthesize: Callable[[str], Template]
) -> None:
    # Given prod's synthesized rule pattern
    _, rule = only(synthesize("prod"), "AWS::Events::Rule", "FileArrivals")
    pattern = rule["Properties"]["EventPattern"]
    # When S3's sample "Object Created" event for this bucket and key is tested against it
    # Then only the daily files under the prefix, in prod's bucket, match
    assert _matches(pattern, _sample_event(key, bucket)) is matches


def test_rule_pattern_matches_the_committed_sample_event_as_is() -> None:
    # Given the committed sample event and the pattern for its bucket
    event = json.loads((REPO_ROOT / "events" / "eventbridge-s3-object-created.json").read_text())
    pattern = Stack().resolve(_pattern_as_json(object_created_pattern(event["detail"]["bucket"]["name"])))
    # When testing the sample against it
    # Then it matches, and a "Object Deleted" event for the same key does not
    assert _matches(pattern, event) is True
    assert _matches(pattern, {**event, "detail-type": "Object Deleted"}) is False


def _pattern_as_json(pattern: events.EventPattern) -> dict[str, Any]:
    return {"source": pattern.source, "detail-type": pattern.detail_type, "detail": pattern.detail}


def test_schedule_runs_at_0600_utc_and_sends_its_intended_time(dev_template: Template) -> None:
    # Given the dev stack
    # When reading the EventBridge Scheduler schedule
    _, schedule = only(dev_template, "AWS::Scheduler::Schedule")
    properties = schedule["Properties"]
    # Then it is cron(0 6 * * ? *) in UTC, targets the ingest, and the payload carries the scheduled time
    assert properties["ScheduleExpression"] == "cron(0 6 * * ? *)"
    assert properties["ScheduleExpressionTimezone"] == "Etc/UTC"
    assert properties["State"] == "ENABLED"
    target = properties["Target"]
    assert target["Arn"] == {"Ref": only(dev_template, "AWS::Lambda::Alias")[0]}
    payload = json.loads(target["Input"])
    assert payload["time"] == "<aws.scheduler.scheduled-time>"
    assert payload["detail-type"] == "Scheduled Event"


def test_schedule_failures_go_to_the_dead_letter_queue(dev_template: Template) -> None:
    # Given the dev stack's schedule and queue
    queue_id, _ = only(dev_template, "AWS::SQS::Queue")
    _, schedule = only(dev_template, "AWS::Scheduler::Schedule")
    # When reading the target's failure handling
    target = schedule["Properties"]["Target"]
    # Then undeliverable invocations land in the DLQ after bounded retries
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 6 * 3600, "MaximumRetryAttempts": 2}


def test_async_invocations_are_bounded_and_a_failed_execution_goes_to_the_functions_dead_letter_queue(
    dev_template: Template,
) -> None:
    # Given the dev stack
    queue_id, _ = only(dev_template, "AWS::SQS::Queue")
    # When reading the ingest's event invoke config and the function
    _, invoke_config = only(dev_template, "AWS::Lambda::EventInvokeConfig", "Ingest")
    properties = invoke_config["Properties"]
    function = resources(dev_template, "AWS::Lambda::Function")[logical_id_of_function(dev_template, "Ingest")]["Properties"]
    # Then retries and age are bounded, and a failed execution's event goes to the DLQ through the function's
    # DeadLetterConfig: a durable function supports dead-letter queues, not destinations (Lambda Developer Guide,
    # "Invoking durable Lambda functions"), so an on-failure destination would never receive it
    assert properties["FunctionName"] == {"Ref": logical_id_of_function(dev_template, "Ingest")}
    assert properties["MaximumRetryAttempts"] == 2
    assert properties["MaximumEventAgeInSeconds"] == 6 * 3600
    assert "DestinationConfig" not in properties
    assert function["DeadLetterConfig"] == {"TargetArn": {"Fn::GetAtt": [queue_id, "Arn"]}}


def test_dead_letter_queue_is_encrypted_kept_two_weeks_and_refuses_plain_http(dev_template: Template) -> None:
    # Given the dev stack
    queue_id, queue = only(dev_template, "AWS::SQS::Queue")
    # When reading the queue and its policy
    # Then it is encrypted at rest, keeps messages 14 days, and its own policy denies non-TLS access
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    dev_template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [{"Ref": queue_id}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            },
        },
    )


def test_ingest_reserved_concurrency_and_sizing_come_from_config(dev_template: Template) -> None:
    # Given the dev settings (2 concurrent, 2048 MB, 900 s, 2048 MB of /tmp)
    # When reading the ingest function
    ingest = resources(dev_template, "AWS::Lambda::Function")[logical_id_of_function(dev_template, "Ingest")]["Properties"]
    # Then the database is protected by reserved concurrency and the sizing matches
    assert ingest["ReservedConcurrentExecutions"] == 2
    assert ingest["MemorySize"] == 2048
    assert ingest["Timeout"] == 900
    assert ingest["EphemeralStorage"] == {"Size": 2048}


def test_ingest_environment_has_every_setting_the_function_reads(dev_template: Template) -> None:
    # Given the dev stack
    # When reading the ingest's environment
    ingest = resources(dev_template, "AWS::Lambda::Function")[logical_id_of_function(dev_template, "Ingest")]["Properties"]
    variables = ingest["Environment"]["Variables"]
    # Then every variable the ingest settings parse is set, and the claim lease lapses before Lambda's first retry
    assert set(variables) == INGEST_DEPLOYED_VARIABLES
    assert variables["SIGNALS_KEY_PREFIX"] == "passive_upsell_signals/"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "UpsellSignals"
    assert variables["DB_TLS_CA_FILE"] == "/opt/certs/rds-ca-bundle.pem"
    lease_seconds = int(variables["CLAIM_LEASE_SECONDS"])
    assert lease_seconds * (1 + 1 / HEARTBEATS_PER_LEASE) < LAMBDA_FIRST_RETRY_SECONDS
    assert load_ingest_settings({"SIGNALS_BUCKET": "b", "CLAIM_LEASE_SECONDS": str(lease_seconds)}).lease_seconds == lease_seconds
    assert variables["WORK_DIR"] == "/tmp"
    # And glibc keeps large blocks in mappings of their own, as in the bench that measured it
    assert variables["MALLOC_MMAP_THRESHOLD_"] == str(128 * 1024)
    # And the function reads the environment its metrics are tagged with from there
    assert load_environment_name(variables) == "dev"


def test_the_publish_rate_the_time_budget_plans_with_is_a_cdk_json_setting(
    dev_template: Template, arm64_layers: Path, tmp_path: Path
) -> None:
    from app import build_app

    # Given dev as committed, and dev with ingest.publishRowsPerSecond raised to what its logs measured
    environments = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]["environments"]
    environments["dev"]["ingest"]["publishRowsPerSecond"] = 60_000
    app = build_app({"env": "dev", "environments": environments}, outdir=str(tmp_path / "cdk-dev-faster"))  # type: ignore[dict-item]
    raised = Template.from_stack(app.node.find_child("UpsellSignals-dev"))  # type: ignore[arg-type]

    # When the ingest settings are read from each function's environment
    def publish_rate(template: Template) -> int:
        function = resources(template, "AWS::Lambda::Function")[logical_id_of_function(template, "Ingest")]["Properties"]
        rate = function["Environment"]["Variables"]["PUBLISH_ROWS_PER_SECOND"]
        return load_ingest_settings({"SIGNALS_BUCKET": "b", "PUBLISH_ROWS_PER_SECOND": rate}).time_budget.publish_rows_per_second

    # Then the committed dev plans with the cautious default, the raised one with its setting
    assert (publish_rate(dev_template), publish_rate(raised)) == (20_000, 60_000)


def test_every_way_in_invokes_the_durable_functions_alias_never_the_unqualified_function(dev_template: Template) -> None:
    # Given the dev stack, whose ingest is a durable function (DurableConfig set at creation)
    function_id, function = only(dev_template, "AWS::Lambda::Function", "IngestDurableIngest")
    alias_id, alias = only(dev_template, "AWS::Lambda::Alias")
    # When reading what each way in names: the file-arrival rule, the schedule, their invoke permissions,
    # the async-invoke settings (retries, on-failure destination) and the stack output operators invoke
    (rule_target,) = only(dev_template, "AWS::Events::Rule", "FileArrivals")[1]["Properties"]["Targets"]
    schedule_target = only(dev_template, "AWS::Scheduler::Schedule")[1]["Properties"]["Target"]
    permissions = [
        permission["Properties"]["FunctionName"]
        for permission in resources(dev_template, "AWS::Lambda::Permission").values()
        if permission["Properties"]["Principal"] == "events.amazonaws.com"
    ]
    invoke_configs = {
        config["Properties"]["Qualifier"]
        for config in resources(dev_template, "AWS::Lambda::EventInvokeConfig").values()
        if config["Properties"]["FunctionName"] == {"Ref": function_id}
    }
    # Then the function is durable, the alias points at its published version, and every one of them names the alias
    # (a durable function cannot be invoked by an unqualified ARN: Lambda Developer Guide, "Invoking durable Lambda functions")
    assert function["Properties"]["DurableConfig"] == {"ExecutionTimeout": 3 * 24 * 3600, "RetentionPeriodInDays": 14}
    assert function["Properties"]["Handler"] == "functions.ingest.continuation.handler"
    assert alias["Properties"]["Name"] == "live"
    assert alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][1] == "Version"
    assert rule_target["Arn"] == {"Ref": alias_id}
    assert schedule_target["Arn"] == {"Ref": alias_id}
    assert permissions == [{"Ref": alias_id}]
    assert invoke_configs == {"live"}
    assert dev_template.to_json()["Outputs"]["IngestAliasArn"]["Value"] == {"Ref": alias_id}
