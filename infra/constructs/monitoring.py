"""Alarms to an SNS topic (e-mail) and a small dashboard of the sync metrics."""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.shared.contract import (
    ENVIRONMENT_DIMENSION,
    GUARD_TRIPPED,
    INGEST_SERVICE_NAME,
    METRICS_NAMESPACE,
    ROW_METRICS,
    SYNC_COMPLETED,
    SYNC_FAILED,
)

# A sync is due every day by 06:00 UTC at the latest; 26 hours leaves two hours of slack.
STALE_AFTER_HOURS = 26


def sync_metric(name: str, period: Duration, environment_name: str) -> cloudwatch.Metric:
    """A custom metric the ingest emits (EMF) in namespace UpsellSignals, for this environment's service."""
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": INGEST_SERVICE_NAME, ENVIRONMENT_DIMENSION: environment_name},
        statistic="Sum",
        period=period,
    )


# An alarm on arrivals goes back to OK one quiet period after each, while its dead letter still waits:
# an OK mail then would read as "resolved". DeadLetterQueueNotEmpty's OK says that.
ALARMS_WITHOUT_OK = frozenset({"DeadLetterArrived"})


class Monitoring(Construct):
    """What pages someone before a downstream team notices stale or missing data."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment_name: str,
        alarm_email: str,
        ingest: lambda_.IFunction,
        migrate: lambda_.IFunction,
        dead_letter_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = self._topic(alarm_email)
        self.alarms = self._alarms(environment_name, ingest, migrate, dead_letter_queue)
        action = actions.SnsAction(self.topic)
        for alarm in self.alarms:
            alarm.add_alarm_action(action)
            if alarm.node.id not in ALARMS_WITHOUT_OK:
                alarm.add_ok_action(action)
        self.dashboard = self._dashboard(environment_name, ingest, dead_letter_queue)

    def _topic(self, alarm_email: str) -> sns.Topic:
        """The alarm topic, encrypted with a key only this account's CloudWatch alarms may use, mailing the team."""
        # A customer key: CloudWatch cannot publish to a topic encrypted with the AWS-managed SNS key.
        key = self.topic_key = kms.Key(self, "TopicKey", enable_key_rotation=True, description="upsell-signals alarm topic")
        key.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                resources=["*"],
                # Only this account's alarms: CloudWatch acting for another account cannot use the key.
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    "ArnLike": {"aws:SourceArn": f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:*"},
                },
            )
        )
        topic = sns.Topic(self, "Alarms", display_name="upsell-signals alarms", master_key=key, enforce_ssl=True)
        # A topic policy replaces SNS's default one, whose statement for the owner account
        # (`AWS:SourceOwner`) is what lets the account's alarms publish: without this, every alarm's
        # action is refused ("not authorized to perform: SNS:Publish ... because no resource-based
        # policy allows"; AWS re:Post Knowledge Center, "cloudwatch-receive-sns-for-alarm-trigger").
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["sns:Publish"],
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                resources=[topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    "ArnLike": {"aws:SourceArn": f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:*"},
                },
            )
        )
        topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        return topic

    def _alarms(
        self,
        environment_name: str,
        ingest: lambda_.IFunction,
        migrate: lambda_.IFunction,
        dead_letter_queue: sqs.IQueue,
    ) -> list[cloudwatch.Alarm]:
        """Dead letters, errors, throttles, failed or timed-out executions, a tripped guard, no completed sync for a day."""
        return [*self._function_alarms(ingest, migrate, dead_letter_queue), *self._sync_alarms(environment_name)]

    def _function_alarms(
        self, ingest: lambda_.IFunction, migrate: lambda_.IFunction, dead_letter_queue: sqs.IQueue
    ) -> list[cloudwatch.Alarm]:
        """What the functions and the dead-letter queue say: failures, throttles, executions that failed or ran out.

        A hand-over is a durable step's answer, so it is none of these: no Errors datapoint, and a run
        that works until its margin before the timeout is the normal shape of a long file (no
        near-timeout alarm). An invocation killed at its timeout is still an Errors datapoint.
        """
        return [
            self._alarm_when_positive(
                "DeadLetterQueueNotEmpty",
                "Failed events are waiting in the DLQ: read the reason, fix, redrive",
                # Visible or not: a message an operator has received to read (hidden for its visibility
                # timeout) still waits, so reading one does not send an OK.
                cloudwatch.MathExpression(
                    expression="visible + hidden",
                    using_metrics={
                        "visible": dead_letter_queue.metric_approximate_number_of_messages_visible(statistic="Maximum"),
                        "hidden": dead_letter_queue.metric_approximate_number_of_messages_not_visible(statistic="Maximum"),
                    },
                    label="dead letters waiting",
                    period=Duration.minutes(5),
                ),
            ),
            # An alarm acts on a change of state only, so while one dead letter waits the one above stays in
            # ALARM and mails nothing for the next. Arrivals (SendMessage: ours, Lambda's, EventBridge's) go
            # back to none after a quiet period, so each new dead letter is a new e-mail.
            self._alarm_when_positive(
                "DeadLetterArrived",
                "A new failed event reached the DLQ (even if older ones still wait there): read its reason",
                dead_letter_queue.metric_number_of_messages_sent(period=Duration.minutes(5), statistic="Sum"),
            ),
            self._alarm_when_positive(
                "IngestErrors",
                "The ingest function raised (Lambda will retry, then dead-letter)",
                ingest.metric_errors(period=Duration.minutes(5), statistic="Sum"),
            ),
            self._alarm_when_positive(
                "IngestThrottles",
                "Ingest invocations were throttled (reserved concurrency full): Lambda retries them, but they wait",
                ingest.metric_throttles(period=Duration.minutes(5), statistic="Sum"),
            ),
            # Execution-level failures: Errors counts invocations only (Lambda Developer Guide,
            # "Monitoring durable functions": "Use DurableExecutionFailed for execution-level failures").
            self._alarm_when_positive(
                "IngestExecutionsFailed",
                "A durable execution of the ingest failed (a run kept failing after its retries): its event is in the DLQ",
                ingest.metric("DurableExecutionFailed", period=Duration.minutes(5), statistic="Sum"),
            ),
            self._alarm_when_positive(
                "IngestExecutionsTimedOut",
                "A durable execution of the ingest ran past its ExecutionTimeout: the date did not complete",
                ingest.metric("DurableExecutionTimedOut", period=Duration.minutes(5), statistic="Sum"),
            ),
            self._alarm_when_positive(
                "MigrateErrors",
                "The migrate function raised",
                migrate.metric_errors(period=Duration.minutes(5), statistic="Sum"),
            ),
        ]

    def _sync_alarms(self, environment_name: str) -> list[cloudwatch.Alarm]:
        """What the sync's own metrics say: a tripped guard, no completed sync for more than a day."""
        return [
            self._alarm_when_positive(
                "GuardTripped",
                "A guard stopped a publish: check the reason, then override or fix the file",
                sync_metric(GUARD_TRIPPED, Duration.minutes(5), environment_name),
            ),
            # Hourly periods, all 26 must be empty: an hour with no SyncCompleted counts as breaching,
            # so the alarm fires 26 hours after the last completed sync and clears on the next one.
            cloudwatch.Alarm(
                self,
                "NoCompletedSync",
                alarm_description=f"No sync completed for more than {STALE_AFTER_HOURS} hours: the table is going stale",
                metric=sync_metric(SYNC_COMPLETED, Duration.hours(1), environment_name),
                threshold=1,
                comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                evaluation_periods=STALE_AFTER_HOURS,
                datapoints_to_alarm=STALE_AFTER_HOURS,
                treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
            ),
        ]

    def _dashboard(self, environment_name: str, ingest: lambda_.IFunction, dead_letter_queue: sqs.IQueue) -> cloudwatch.Dashboard:
        """A week of syncs, rows, the ingest's duration and errors, the dead-letter queue and the alarms."""
        dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=Duration.days(7))
        day = Duration.days(1)
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Syncs per day",
                left=[sync_metric(name, day, environment_name) for name in (SYNC_COMPLETED, SYNC_FAILED, GUARD_TRIPPED)],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Rows per day",
                left=[
                    sync_metric(name, day, environment_name) for field, name in ROW_METRICS.items() if field != "rows_processed"
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Ingest duration and errors",
                left=[ingest.metric_duration(statistic="Maximum")],
                right=[ingest.metric_errors(statistic="Sum"), ingest.metric_throttles(statistic="Sum")],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Dead-letter queue",
                left=[dead_letter_queue.metric_approximate_number_of_messages_visible(statistic="Maximum")],
                width=12,
            ),
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms), width=24),
        )
        return dashboard

    def _alarm_when_positive(self, construct_id: str, description: str, metric: cloudwatch.IMetric) -> cloudwatch.Alarm:
        """An alarm on any datapoint above zero in a period; no data means nothing happened."""
        return cloudwatch.Alarm(
            self,
            construct_id,
            alarm_description=description,
            metric=metric,
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
