"""Alarms reach the SNS topic before a downstream team notices stale data; a small dashboard exists."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_cdk.assertions import Template

from tests.infrastructure.helpers import logical_id_of_function, only, resources


def _alarm(template: Template, name_part: str) -> dict[str, Any]:
    properties: dict[str, Any] = only(template, "AWS::CloudWatch::Alarm", name_part)[1]["Properties"]
    return properties


def test_every_alarm_notifies_the_topic(dev_template: Template) -> None:
    # Given the dev stack
    topic_id, _ = only(dev_template, "AWS::SNS::Topic")
    # When reading all alarms
    alarms = resources(dev_template, "AWS::CloudWatch::Alarm")
    # Then the eleven alarms (two on the created database) exist and each sends to the topic
    parts = (
        "DeadLetterQueueNotEmpty", "DeadLetterArrived", "IngestErrors", "IngestThrottles", "IngestExecutionsFailed", "IngestExecutionsTimedOut", "MigrateErrors",
        "GuardTripped", "NoCompletedSync", "FreeStorageLow", "CpuCreditsLow",
    )  # fmt: skip
    names = {name for name in alarms for part in parts if part in name}
    assert len(names) == 11 == len(alarms)
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
    assert alarm["Dimensions"] == [
        {"Name": "environment", "Value": "dev"},
        {"Name": "service", "Value": "upsell-signals-ingest"},
    ]
    assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (3600, 26, 26)
    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    assert alarm["Threshold"] == 1
    assert alarm["TreatMissingData"] == "breaching"


def test_guard_trip_and_dead_letters_alarm_on_the_first_occurrence(dev_template: Template) -> None:
    # Given the dev stack
    queue_id, _ = only(dev_template, "AWS::SQS::Queue")
    # When reading the guard and DLQ alarms
    guard = _alarm(dev_template, "GuardTripped")
    dead_letters = _alarm(dev_template, "DeadLetterQueueNotEmpty")
    # Then one tripped guard or one message in the DLQ is enough, and a message counts while an operator
    # has received it to read (hidden for its visibility timeout) as much as while it is visible
    assert (guard["Namespace"], guard["MetricName"], guard["Threshold"]) == ("UpsellSignals", "GuardTripped", 0)
    assert guard["ComparisonOperator"] == "GreaterThanThreshold"
    [expression] = [query for query in dead_letters["Metrics"] if "Expression" in query]
    assert expression["Expression"] == "visible + hidden" and expression["ReturnData"] is True
    counted = {
        query["Id"]: query["MetricStat"]["Metric"]["MetricName"]
        for query in dead_letters["Metrics"]
        if "MetricStat" in query
        and query["MetricStat"]["Metric"]["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    }
    assert counted == {"visible": "ApproximateNumberOfMessagesVisible", "hidden": "ApproximateNumberOfMessagesNotVisible"}
    assert (dead_letters["Threshold"], dead_letters["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_dashboard_shows_the_sync_metrics(dev_template: Template) -> None:
    # Given the dev stack
    # When reading the dashboard body
    _, dashboard = only(dev_template, "AWS::CloudWatch::Dashboard")
    body = str(dashboard["Properties"]["DashboardBody"])
    # Then it graphs the sync counters and row counts
    for metric in ("SyncCompleted", "SyncFailed", "GuardTripped", "RowsInserted", "RowsRejected"):
        assert metric in body, metric


def test_custom_metric_alarms_select_their_own_environment(synthesize: Callable[[str], Template]) -> None:
    # Given prod, which may share an account with another environment
    template = synthesize("prod")
    # When reading the alarms on the ingest's own metrics
    custom = [alarm for alarm in resources(template, "AWS::CloudWatch::Alarm").values() if alarm["Properties"].get("Namespace") == "UpsellSignals"]
    # Then each selects prod's metrics only
    assert len(custom) == 2
    for alarm in custom:
        assert {"Name": "environment", "Value": "prod"} in alarm["Properties"]["Dimensions"]


def test_dashboard_graphs_this_environments_metrics(dev_template: Template) -> None:
    # Given the dev stack
    # When reading the dashboard body
    _, dashboard = only(dev_template, "AWS::CloudWatch::Dashboard")
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    # Then its sync metrics carry the environment dimension with dev's name
    assert '\\"environment\\",\\"dev\\"' in body


def test_throttles_alarm_on_the_first_throttled_invocation(dev_template: Template) -> None:
    # Given the dev stack
    ingest_id = logical_id_of_function(dev_template, "Ingest")
    # When reading the throttles alarm
    alarm = _alarm(dev_template, "IngestThrottles")
    # Then one throttle of the ingest in five minutes is enough
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == ("AWS/Lambda", "Throttles", "Sum")
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": ingest_id}}]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


def test_a_hand_over_alarms_nowhere_and_a_failed_or_timed_out_execution_does(dev_template: Template) -> None:
    # Given the dev stack, whose ingest hands a long file over from run to run inside one durable execution
    function_id = logical_id_of_function(dev_template, "IngestDurableIngest")
    alarms = [alarm["Properties"] for alarm in resources(dev_template, "AWS::CloudWatch::Alarm").values()]
    # When reading what the alarms on the ingest watch
    watched = {alarm["MetricName"] for alarm in alarms if alarm.get("Dimensions") == [{"Name": "FunctionName", "Value": {"Ref": function_id}}]}
    # Then no alarm watches the run's duration (a run working up to its margin is a long file's normal shape),
    # none counts SyncHandedOver, and Errors, Throttles, DurableExecutionFailed and DurableExecutionTimedOut page
    assert watched == {"Errors", "Throttles", "DurableExecutionFailed", "DurableExecutionTimedOut"}
    assert all(alarm.get("MetricName") != "SyncHandedOver" for alarm in alarms)
    assert all(alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold" for alarm in alarms
               if alarm.get("MetricName", "").startswith("DurableExecution"))  # fmt: skip


def test_topic_key_admits_cloudwatch_only_for_this_accounts_alarms(dev_template: Template) -> None:
    # Given the dev stack
    # When reading the topic key's statement for the CloudWatch service principal
    _, key = only(dev_template, "AWS::KMS::Key")
    statements = [
        statement
        for statement in key["Properties"]["KeyPolicy"]["Statement"]
        if statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    # Then it is conditioned on this account and on alarms in it (no confused deputy)
    (statement,) = statements
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    source_arn = json.dumps(statement["Condition"]["ArnLike"]["aws:SourceArn"])
    assert ":cloudwatch:" in source_arn and ":alarm:*" in source_arn and "AWS::AccountId" in source_arn


def _rendered(value: Any) -> str:
    """An Fn::Join of the dashboard body as text, references written as Ref:X and GetAtt:X.Attr."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return f"Ref:{value['Ref']}"
    if "Fn::GetAtt" in value:
        return "GetAtt:" + ".".join(value["Fn::GetAtt"])
    separator, parts = value["Fn::Join"]
    return str(separator).join(_rendered(part) for part in parts)


def test_every_dashboard_metric_and_alarm_is_this_environments_own(synthesize: Callable[[str], Template]) -> None:
    # Given prod, which may share an account (and so CloudWatch's metrics) with another environment
    template = synthesize("prod")
    ingest_id = logical_id_of_function(template, "Ingest")
    queue_id, _ = only(template, "AWS::SQS::Queue")
    alarm_ids = set(resources(template, "AWS::CloudWatch::Alarm"))
    _, dashboard = only(template, "AWS::CloudWatch::Dashboard")

    # When reading every metric and alarm the dashboard's widgets show
    body = json.loads(_rendered(dashboard["Properties"]["DashboardBody"]))
    metrics = [metric for widget in body["widgets"] for metric in widget["properties"].get("metrics", [])]
    alarms = [alarm for widget in body["widgets"] for alarm in widget["properties"].get("alarms", [])]

    # Then the ingest's own metrics select prod, the AWS ones name prod's function and queue, the
    # alarms are this stack's: nothing on it reads another environment's figures
    namespaces = set()
    for metric in metrics:
        namespace, _name, *rest = [part for part in metric if not isinstance(part, dict)]  # a trailing dict: its options
        dimensions = dict(zip(rest[0::2], rest[1::2], strict=True))
        namespaces.add(namespace)
        if namespace == "UpsellSignals":
            assert dimensions.get("environment") == "prod", metric
        elif namespace == "AWS/Lambda":
            assert dimensions == {"FunctionName": f"Ref:{ingest_id}"}, metric
        elif namespace == "AWS/SQS":
            assert dimensions == {"QueueName": f"GetAtt:{queue_id}.QueueName"}, metric
        else:
            raise AssertionError(f"a dashboard metric in an unexpected namespace: {metric}")
    assert namespaces == {"UpsellSignals", "AWS/Lambda", "AWS/SQS"}
    assert len([metric for metric in metrics if metric[0] == "UpsellSignals"]) >= 5
    assert alarms and {alarm.removeprefix("GetAtt:").removesuffix(".Arn") for alarm in alarms} == alarm_ids


def test_every_alarm_on_an_aws_metric_names_this_stacks_own_function_or_queue(synthesize: Callable[[str], Template]) -> None:
    # Given prod, which may share an account with another environment
    template = synthesize("prod")
    functions = set(resources(template, "AWS::Lambda::Function"))
    queues = set(resources(template, "AWS::SQS::Queue"))
    # When reading the alarms on AWS's own metrics (Lambda, SQS), single or inside an expression
    watched = []
    for logical_id, alarm in resources(template, "AWS::CloudWatch::Alarm").items():
        properties = alarm["Properties"]
        metrics = [properties] + [query["MetricStat"]["Metric"] for query in properties.get("Metrics", []) if "MetricStat" in query]
        watched += [(logical_id, metric) for metric in metrics if metric.get("Namespace") in ("AWS/Lambda", "AWS/SQS")]
    assert len(watched) >= 7
    # Then each selects one of this stack's functions or its queue, never the whole account's figures
    for logical_id, metric in watched:
        dimensions = {dimension["Name"]: dimension["Value"] for dimension in metric.get("Dimensions", [])}
        if metric["Namespace"] == "AWS/Lambda":
            assert set(dimensions) == {"FunctionName"}, logical_id
            assert dimensions["FunctionName"].get("Ref") in functions, logical_id
        else:
            assert set(dimensions) == {"QueueName"}, logical_id
            assert dimensions["QueueName"]["Fn::GetAtt"][0] in queues, logical_id


def _alarms_on(template: Template, namespace: str, metric_name: str) -> list[dict[str, Any]]:
    return [
        alarm["Properties"]
        for alarm in resources(template, "AWS::CloudWatch::Alarm").values()
        if (alarm["Properties"].get("Namespace"), alarm["Properties"].get("MetricName")) == (namespace, metric_name)
    ]


def test_a_new_dead_letter_notifies_even_while_an_older_one_waits(dev_template: Template) -> None:
    # An alarm's actions run on a change of state only (CloudWatch User Guide, "Alarm actions"): while one
    # dead letter waits, an alarm on the queue's depth stays in ALARM and mails nothing for the next one.
    # Given the dev stack and its dead-letter queue
    queue_id, _ = only(dev_template, "AWS::SQS::Queue")
    topic_id, _ = only(dev_template, "AWS::SNS::Topic")
    # When looking for an alarm that counts arrivals in the queue, not its depth
    arrivals = [
        alarm
        for alarm in _alarms_on(dev_template, "AWS/SQS", "NumberOfMessagesSent")
        if alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    ]
    # Then there is one: any arrival in a period alarms, a period with none is OK again (so the
    # next arrival is a new transition), and it mails the topic
    assert arrivals, "only the DLQ's depth is alarmed: a second dead letter while one waits sends no e-mail"
    [alarm] = arrivals
    assert alarm["Statistic"] == "Sum" and alarm["Threshold"] == 0
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["Period"] <= 3600
    assert alarm["AlarmActions"] == [{"Ref": topic_id}]
    # and sends no OK a quiet period later, while that dead letter still waits
    assert "OKActions" not in alarm
