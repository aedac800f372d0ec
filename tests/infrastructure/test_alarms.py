"""Alarms reach the SNS topic before a downstream team notices stale data; a small dashboard exists."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Template

from tests.infrastructure.helpers import only, resources


def _alarm(template: Template, name_part: str) -> dict[str, Any]:
    properties: dict[str, Any] = only(template, "AWS::CloudWatch::Alarm", name_part)[1]["Properties"]
    return properties


def test_every_alarm_notifies_the_topic(dev_template: Template) -> None:
    # Given the dev stack
    topic_id, _ = only(dev_template, "AWS::SNS::Topic")
    # When reading all alarms
    alarms = resources(dev_template, "AWS::CloudWatch::Alarm")
    # Then the five alarms exist and each sends to the topic
    names = {
        name
        for name in alarms
        for part in ("DeadLetter", "IngestErrors", "MigrateErrors", "GuardTripped", "NoCompletedSync")
        if part in name
    }
    assert len(names) == 5 == len(alarms)
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]


def test_topic_emails_the_configured_address_over_an_encrypted_topic(dev_template: Template) -> None:
    # Given the dev stack
    # When reading the topic and its subscription
    _, topic = only(dev_template, "AWS::SNS::Topic")
    # Then it is KMS-encrypted and mails the address from cdk.json
    assert "KmsMasterKeyId" in topic["Properties"]
    dev_template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "upsell-signals-dev@example.com"}
    )


def test_no_completed_sync_for_26_hours_alarms_with_missing_data_breaching(dev_template: Template) -> None:
    # Given the dev stack
    # When reading the staleness alarm
    alarm = _alarm(dev_template, "NoCompletedSync")
    # Then it counts SyncCompleted per hour and fires after 26 empty hours; no data counts as breaching
    assert (alarm["Namespace"], alarm["MetricName"]) == ("UpsellSignals", "SyncCompleted")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "upsell-signals-ingest"}]
    assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (3600, 26, 26)
    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    assert alarm["Threshold"] == 1
    assert alarm["TreatMissingData"] == "breaching"


def test_guard_trip_and_dead_letters_alarm_on_the_first_occurrence(dev_template: Template) -> None:
    # Given the dev stack
    queue_id, _ = only(dev_template, "AWS::SQS::Queue")
    # When reading the guard and DLQ alarms
    guard = _alarm(dev_template, "GuardTripped")
    dead_letters = _alarm(dev_template, "DeadLetter")
    # Then one tripped guard or one message in the DLQ is enough
    assert (guard["Namespace"], guard["MetricName"], guard["Threshold"]) == ("UpsellSignals", "GuardTripped", 0)
    assert guard["ComparisonOperator"] == "GreaterThanThreshold"
    assert dead_letters["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert dead_letters["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    assert dead_letters["Threshold"] == 0


def test_dashboard_shows_the_sync_metrics(dev_template: Template) -> None:
    # Given the dev stack
    # When reading the dashboard body
    _, dashboard = only(dev_template, "AWS::CloudWatch::Dashboard")
    body = str(dashboard["Properties"]["DashboardBody"])
    # Then it graphs the sync counters and row counts
    for metric in ("SyncCompleted", "SyncFailed", "GuardTripped", "RowsInserted", "RowsRejected"):
        assert metric in body, metric
