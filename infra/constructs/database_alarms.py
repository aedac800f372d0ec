"""What pages someone about the database itself: storage and CPU credits of a created instance, a failed rotation."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constructs.database import Database
from infra.nag import acknowledge

# Below this share of the allocated storage free, the next large staging pass may fill the disk.
FREE_STORAGE_SHARE = 0.10
# A burstable instance with fewer credits than this is about to be throttled (standard mode) or
# billed for surplus credits (unlimited mode); either way the syncs are about to slow down.
LOW_CPU_CREDITS = 30
# RDS reports FreeStorageSpace in bytes; allocated storage is configured in GiB.
BYTES_PER_GIB = 1024**3


def is_burstable(instance_class: str) -> bool:
    """T-family classes (t3.micro, t4g.medium, ...) spend and earn CPU credits."""
    return instance_class.startswith("t")


class DatabaseAlarms(Construct):
    """Alarms on a created instance's free storage and, when burstable, its CPU credit balance; and a
    notification for every failed rotation of a secret this stack rotates.

    Secrets Manager reports a failed rotation as a CloudTrail service event (`RotationFailed`, the
    secret's ARN in `additionalEventData.SecretId`; Secrets Manager User Guide, "Logging AWS Secrets
    Manager events with AWS CloudTrail"), which EventBridge matches; no metric exists for it.
    """

    def __init__(self, scope: Construct, construct_id: str, *, database: Database, topic: sns.ITopic) -> None:
        super().__init__(scope, construct_id)
        self.alarms = self._instance_alarms(database)
        action = actions.SnsAction(topic)
        for alarm in self.alarms:
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
        self.rotation_failed = self._rotation_failed(database, topic)

    def _instance_alarms(self, database: Database) -> list[cloudwatch.Alarm]:
        """Free storage under 10% and, on a burstable class, CPU credits running out (created instance only)."""
        instance, settings = database.created_instance, database.created_settings
        if instance is None or settings is None:
            return []  # an imported database is watched by its owner
        alarms = [
            cloudwatch.Alarm(
                self,
                "FreeStorageLow",
                alarm_description=(
                    f"Less than {FREE_STORAGE_SHARE:.0%} of the database's {settings.allocated_storage_gb} GiB is free: "
                    "raise allocatedStorageGb before a sync fills it"
                ),
                metric=instance.metric_free_storage_space(period=Duration.minutes(5), statistic="Minimum"),
                threshold=settings.allocated_storage_gb * BYTES_PER_GIB * FREE_STORAGE_SHARE,
                comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        ]
        if is_burstable(settings.instance_class):
            alarms.append(
                cloudwatch.Alarm(
                    self,
                    "CpuCreditsLow",
                    alarm_description=(
                        f"The {settings.instance_class} database has fewer than {LOW_CPU_CREDITS} CPU credits left: "
                        "it is about to be throttled or billed for surplus credits; consider a larger class"
                    ),
                    metric=instance.metric("CPUCreditBalance", period=Duration.minutes(5), statistic="Minimum"),
                    threshold=LOW_CPU_CREDITS,
                    comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                    evaluation_periods=1,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                )
            )
        return alarms

    def _rotation_failed(self, database: Database, topic: sns.ITopic) -> events.Rule:
        """An EventBridge rule sending Secrets Manager's RotationFailed for our secrets to the alarm topic."""
        rule = events.Rule(
            self,
            "RotationFailed",
            description="upsell-signals: a database secret's rotation failed (the functions may soon be refused)",
            event_pattern=events.EventPattern(
                source=["aws.secretsmanager"],
                detail_type=["AWS Service Event via CloudTrail"],
                detail={
                    "eventName": ["RotationFailed"],
                    "additionalEventData": {"SecretId": [secret.secret_arn for secret in database.rotated_secrets]},
                },
            ),
            # Through a role of this rule's own, not a topic and key policy for EventBridge: a
            # service principal there would admit any account's rules (a confused deputy).
            targets=[events_targets.SnsTopic(topic, authorize_using_role=True)],
        )
        acknowledge(
            rule,
            "IAM5[Action::kms:GenerateDataKey*]",
            "The rule's role publishes to the encrypted alarm topic: SNS needs kms:GenerateDataKey (the topic grant's "
            "GenerateDataKey*) on the topic's key, and the statement names that key alone.",
        )
        return rule
