"""The ways into the ingest: S3 notification filter, the 06:00 UTC schedule, async retries and the DLQ."""

from __future__ import annotations

import json

from aws_cdk.assertions import Match, Template

from tests.infrastructure.helpers import logical_id_of_function, only, resources


def test_s3_notification_invokes_ingest_only_for_daily_parquet_keys(dev_template: Template) -> None:
    # Given the dev stack
    # When reading the bucket notification configuration
    _, notifications = only(dev_template, "Custom::S3BucketNotifications")
    configurations = notifications["Properties"]["NotificationConfiguration"]["LambdaFunctionConfigurations"]
    # Then exactly one ObjectCreated rule targets the ingest, filtered to the prefix and the suffix
    assert len(configurations) == 1
    rule = configurations[0]
    assert rule["Events"] == ["s3:ObjectCreated:*"]
    assert rule["LambdaFunctionArn"] == {"Fn::GetAtt": [logical_id_of_function(dev_template, "Ingest"), "Arn"]}
    filter_rules = {item["Name"]: item["Value"] for item in rule["Filter"]["Key"]["FilterRules"]}
    assert filter_rules == {"prefix": "passive_upsell_signals/", "suffix": "/data.parquet"}


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
    assert target["Arn"] == {"Fn::GetAtt": [logical_id_of_function(dev_template, "Ingest"), "Arn"]}
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


def test_async_invocations_retry_twice_then_go_to_the_dead_letter_queue(dev_template: Template) -> None:
    # Given the dev stack
    queue_id, _ = only(dev_template, "AWS::SQS::Queue")
    # When reading the ingest's event invoke config
    _, invoke_config = only(dev_template, "AWS::Lambda::EventInvokeConfig")
    properties = invoke_config["Properties"]
    # Then retries and age are bounded and failures go to the DLQ
    assert properties["FunctionName"] == {"Ref": logical_id_of_function(dev_template, "Ingest")}
    assert properties["MaximumRetryAttempts"] == 2
    assert properties["MaximumEventAgeInSeconds"] == 6 * 3600
    assert properties["DestinationConfig"] == {"OnFailure": {"Destination": {"Fn::GetAtt": [queue_id, "Arn"]}}}


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
    # Then every variable the ingest settings parse is set, and the claim lease outlives the timeout
    expected = {
        "SIGNALS_BUCKET", "SIGNALS_KEY_PREFIX", "DB_SECRET_ARN", "DB_NAME", "DB_TLS_CA_FILE", "STAGING_CHUNK_ROWS",
        "STAGING_LOAD_METHOD", "MISSING_ROWS", "GUARD_MAX_REJECT_RATIO", "GUARD_MAX_ROW_COUNT_DRIFT", "GUARD_MAX_DELETE_RATIO",
        "CLAIM_LEASE_SECONDS", "DEAD_LETTER_QUEUE_URL", "WORK_DIR", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE",
    }  # fmt: skip
    assert set(variables) == expected
    assert variables["SIGNALS_KEY_PREFIX"] == "passive_upsell_signals/"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "UpsellSignals"
    assert variables["DB_TLS_CA_FILE"] == "/opt/certs/rds-ca-bundle.pem"
    assert int(variables["CLAIM_LEASE_SECONDS"]) > ingest["Timeout"]
    assert variables["WORK_DIR"] == "/tmp"
