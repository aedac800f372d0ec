"""The ingest function and the ways in: S3 "Object Created" through EventBridge, the 06:00 UTC schedule, manual invoke.

The function is a Lambda durable function (functions/ingest/continuation.py): a file that needs
several runs continues in one durable execution. Every way in invokes its alias `live`, a
qualified ARN, since a durable function cannot be invoked unqualified (Lambda Developer Guide,
"Invoking durable Lambda functions"; aws/aws-durable-execution-sdk-js discussion #499).
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack, TimeZone
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from constructs import Construct, IConstruct

from functions.shared.contract import (
    CLAIM_LEASE_SECONDS,
    DURABLE_EXECUTION_TIMEOUT_SECONDS,
    DURABLE_RETENTION_DAYS,
    INGEST_ALIAS,
    INGEST_FUNCTION_STEM,
    INGEST_MALLOC_MMAP_THRESHOLD_BYTES,
    INGEST_SERVICE_NAME,
    KEY_PREFIX,
    KEY_SUFFIX,
    METRICS_NAMESPACE,
    continuation_runs,
    function_name,
)
from functions.shared.environment import Env
from functions.shared.settings import DEFAULT_TIME_BUDGET_MARGIN_SECONDS
from infra.config import EnvConfig, IngestSizing
from infra.constructs.code import FunctionCode
from infra.constructs.database import Database
from infra.constructs.dead_letter import DeadLetterQueue
from infra.constructs.network import Network
from infra.constructs.vpc_function import VpcFunction

INGEST_HANDLER = "functions.ingest.continuation.handler"

# What the schedule sends: the shape of an EventBridge scheduled event, with `time` the schedule's
# intended time (not the delivery time), so a late delivery still syncs the day before it.
SCHEDULED_EVENT = {
    "version": "0",
    "id": scheduler.ContextAttribute.execution_id,
    "detail-type": "Scheduled Event",
    "source": "aws.scheduler",
    "time": scheduler.ContextAttribute.scheduled_time,
    "resources": [scheduler.ContextAttribute.schedule_arn],
    "detail": {},
}


def object_created_pattern(bucket_name: str) -> events.EventPattern:
    """S3's "Object Created" events for the daily files: this bucket, key prefix and suffix as S3's filter had them."""
    return events.EventPattern(
        source=["aws.s3"],
        detail_type=["Object Created"],
        detail={
            "bucket": {"name": [bucket_name]},
            # One wildcard holds both ends: EventBridge takes one matcher per field value.
            "object": {"key": events.Match.wildcard(f"{KEY_PREFIX}*{KEY_SUFFIX}")},
        },
    )


class Ingest(Construct):
    """Ingest function with async retries and its DLQ, fed by S3 (via EventBridge) and by EventBridge Scheduler.

    File arrivals come through an EventBridge rule, never a bucket notification: writing a
    notification configuration onto a bucket (CDK's Custom::S3BucketNotifications) replaces the
    configuration other teams keep on a shared bucket. The bucket only has EventBridge delivery on.

    Scheduler rather than a scheduled rule: AWS recommends it, it takes a time zone (06:00 is
    pinned to UTC), it has its own retry policy and DLQ, and it can put the intended run time into
    the payload (`<aws.scheduler.scheduled-time>`), which the ingest needs to pick the date.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvConfig,
        code: FunctionCode,
        network: Network,
        database: Database,
        bucket: s3.IBucket,
        bucket_kms_key_arn: str | None,
        dead_letters: DeadLetterQueue,
        after: IConstruct,
    ) -> None:
        super().__init__(scope, construct_id)
        sizing = config.ingest
        self.function = self._function(config, code, network=network, database=database, bucket=bucket, dead_letters=dead_letters)
        function = self.function.function
        self._send_failed_executions_to(function, dead_letters)
        # A new version on every code or configuration change; the alias follows it in the same deploy.
        self.alias = lambda_.Alias(self, "Live", alias_name=INGEST_ALIAS, version=function.current_version)
        self._grant_least_privilege(self.function.role, bucket, bucket_kms_key_arn, dead_letters)
        self._grant_durable_execution(self.function.role, function_name(INGEST_FUNCTION_STEM, config.name))
        async_invoke = self._configure_async_invoke(function, sizing.retry_attempts, sizing.max_event_age_hours)
        async_invoke.node.add_dependency(self.alias)  # configured on the alias, which must exist first
        self.file_arrivals = self._file_arrivals(self.alias, bucket, sizing, dead_letters)
        self.schedule = self._daily_fallback(self.alias, config, dead_letters)
        # No event may reach the ingest before the schema exists: both event sources wait for the
        # migration, and so does the alias every event goes through, so that on an update the new
        # code goes live only once the schema it reads is there (until then the alias keeps the
        # previous version, built for the schema as it was).
        self.schedule.node.add_dependency(after)
        self.file_arrivals.node.add_dependency(after)
        self.alias.node.add_dependency(after)

    def _function(
        self,
        config: EnvConfig,
        code: FunctionCode,
        *,
        network: Network,
        database: Database,
        bucket: s3.IBucket,
        dead_letters: DeadLetterQueue,
    ) -> VpcFunction:
        """The ingest function in the VPC, with the settings it reads from its environment."""
        sizing = config.ingest
        return VpcFunction(
            self,
            # A new logical id and name: Lambda enables durable execution only when it creates a
            # function (Lambda Developer Guide, "Configure Lambda durable functions"), and CloudFormation
            # cannot replace a function under a fixed name. docs/deploy.md, "Switching to durable execution".
            "DurableIngest",
            function_name=function_name(INGEST_FUNCTION_STEM, config.name),
            description="upsell-signals: sync one day of Parquet from S3 into MariaDB",
            handler=INGEST_HANDLER,
            durable_config=lambda_.DurableConfig(
                execution_timeout=Duration.seconds(DURABLE_EXECUTION_TIMEOUT_SECONDS),
                retention_period=Duration.days(DURABLE_RETENTION_DAYS),
            ),
            code=code,
            network=network,
            database=database,
            # Its own account: data changes on its tables only (migrations/0006), never the administrator's.
            database_secret=database.ingest_secret,
            environment={
                Env.SIGNALS_BUCKET: bucket.bucket_name,
                Env.SIGNALS_KEY_PREFIX: KEY_PREFIX,
                Env.STAGING_CHUNK_ROWS: str(sizing.staging_chunk_rows),
                Env.STAGING_LOAD_METHOD: sizing.staging_load_method,
                Env.MISSING_ROWS: sizing.missing_rows,
                Env.PUBLISH_ROWS_PER_SECOND: str(sizing.publish_rows_per_second),
                Env.GUARD_MAX_REJECT_RATIO: str(config.guards.max_reject_ratio),
                Env.GUARD_MAX_ROW_COUNT_DRIFT: str(config.guards.max_row_count_drift),
                Env.GUARD_MAX_DELETE_RATIO: str(config.guards.max_delete_ratio),
                # Short and kept alive by a heartbeat: a killed holder's lease lapses before Lambda's first retry.
                Env.CLAIM_LEASE_SECONDS: str(CLAIM_LEASE_SECONDS),
                # The runs one durable execution may take: at least a day of work (functions/shared/contract.py).
                Env.CONTINUATION_MAX_RUNS: str(continuation_runs(sizing.timeout_seconds, DEFAULT_TIME_BUDGET_MARGIN_SECONDS)),
                Env.DEAD_LETTER_QUEUE_URL: dead_letters.queue.queue_url,
                Env.WORK_DIR: "/tmp",  # noqa: S108 - Lambda's only writable path (ephemeral storage)
                Env.POWERTOOLS_SERVICE_NAME: INGEST_SERVICE_NAME,
                Env.POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
                # The metrics' environment dimension (functions/ingest/telemetry.py), which the alarms select on.
                Env.ENVIRONMENT_NAME: config.name,
                Env.MALLOC_MMAP_THRESHOLD: str(INGEST_MALLOC_MMAP_THRESHOLD_BYTES),
            },
            memory_mb=sizing.memory_mb,
            timeout=Duration.seconds(sizing.timeout_seconds),
            ephemeral_storage_mb=sizing.ephemeral_storage_mb,
            reserved_concurrency=sizing.reserved_concurrency,
            log_retention_days=config.log_retention_days,
        )

    def _file_arrivals(
        self, function: lambda_.IFunction, bucket: s3.IBucket, sizing: IngestSizing, dead_letters: DeadLetterQueue
    ) -> events.Rule:
        """The EventBridge rule that sends the bucket's daily files to the ingest (no notification configuration written)."""
        return events.Rule(
            self,
            "FileArrivals",
            description=f"S3 Object Created for {KEY_PREFIX}*{KEY_SUFFIX}: sync that date",
            event_pattern=object_created_pattern(bucket.bucket_name),
            targets=[
                events_targets.LambdaFunction(
                    function,
                    # EventBridge's own delivery retries; once delivered, the function's async retries apply.
                    dead_letter_queue=dead_letters.queue,
                    retry_attempts=sizing.retry_attempts,
                    max_event_age=Duration.hours(sizing.max_event_age_hours),
                )
            ],
        )

    def _daily_fallback(
        self, function: lambda_.IFunction, config: EnvConfig, dead_letters: DeadLetterQueue
    ) -> scheduler.Schedule:
        """The 06:00 UTC schedule that syncs yesterday if no S3 event did."""
        sizing = config.ingest
        return scheduler.Schedule(
            self,
            "DailyFallback",
            description="06:00 UTC: sync yesterday's file if no S3 event did",
            schedule=scheduler.ScheduleExpression.expression(config.schedule, time_zone=TimeZone.ETC_UTC),
            target=targets.LambdaInvoke(
                function,
                input=scheduler.ScheduleTargetInput.from_object(SCHEDULED_EVENT),
                dead_letter_queue=dead_letters.queue,
                retry_attempts=sizing.retry_attempts,
                max_event_age=Duration.hours(sizing.max_event_age_hours),
            ),
        )

    @staticmethod
    def _grant_least_privilege(
        role: iam.IRole, bucket: s3.IBucket, kms_key_arn: str | None, dead_letters: DeadLetterQueue
    ) -> None:
        # Read the daily files and nothing else in the bucket. Without s3:ListBucket a missing key
        # answers 403 rather than 404; granting List would widen access to every key name.
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects(f"{KEY_PREFIX}*")])
        )
        if kms_key_arn:
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["kms:Decrypt"],
                    resources=[kms_key_arn],
                    conditions={"StringEquals": {"kms:ViaService": f"s3.{bucket.stack.region}.amazonaws.com"}},
                )
            )
        # Both the on-failure destination (Lambda sends with the function's role) and the function's
        # own reporting of a failed event need exactly this on exactly this queue.
        role.add_to_principal_policy(iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[dead_letters.queue.queue_arn]))

    def _grant_durable_execution(self, role: iam.IRole, function_name: str) -> None:
        """What the durable SDK calls on its own executions: record checkpoints, read back their state.

        As AWS's managed AWSLambdaBasicDurableExecutionRolePolicy grants, narrowed to this function's
        qualified ARNs (Lambda Developer Guide, "Configure Lambda durable functions", IAM permissions).
        """
        # By name, not by the function's Arn: the function depends on its role's policy (a cycle otherwise).
        qualified = Stack.of(self).format_arn(
            service="lambda", resource="function", resource_name=f"{function_name}:*", arn_format=ArnFormat.COLON_RESOURCE_NAME
        )
        self.durable_execution_grant = iam.PolicyStatement(
            actions=["lambda:CheckpointDurableExecution", "lambda:GetDurableExecutionState"], resources=[qualified]
        )
        role.add_to_principal_policy(self.durable_execution_grant)

    @staticmethod
    def _send_failed_executions_to(function: lambda_.Function, dead_letters: DeadLetterQueue) -> None:
        """The function's dead-letter queue: where Lambda sends the event of an async start whose execution failed.

        A durable function supports dead-letter queues but not destinations: "Durable functions support
        dead-letter queues (DLQs) for error handling, but don't support Lambda destinations" (Lambda Developer
        Guide, "Invoking durable Lambda functions"). When an execution started asynchronously ends FAILED,
        STOPPED or TIMED_OUT, "Lambda sends the original triggering event to the DLQ" (same guide, "Best
        practices for Lambda durable functions", Error handling): the event as-is, with the attributes
        RequestID, ErrorCode and ErrorMessage ("Capturing records of Lambda asynchronous invocations",
        Dead-letter queues). L1 on purpose: the L2 property also grants the role what it already has.
        """
        cfn_function = function.node.default_child
        if not isinstance(cfn_function, lambda_.CfnFunction):
            raise TypeError(f"{function.node.path} has no CfnFunction to give a dead-letter queue")
        cfn_function.dead_letter_config = lambda_.CfnFunction.DeadLetterConfigProperty(target_arn=dead_letters.queue.queue_arn)

    @staticmethod
    def _configure_async_invoke(
        function: lambda_.Function, retry_attempts: int, max_age_hours: int
    ) -> lambda_.CfnEventInvokeConfig:
        # No on-failure destination: a durable function does not support destinations (its failed executions go
        # to the function's dead-letter queue, above). The bounds stay those of Lambda's queue of async events; a
        # failed execution itself is not retried by Lambda ("Best practices for Lambda durable functions").
        config = lambda_.CfnEventInvokeConfig(
            function,
            "AsyncInvoke",
            function_name=function.function_name,
            qualifier=INGEST_ALIAS,
            maximum_retry_attempts=retry_attempts,
            maximum_event_age_in_seconds=int(Duration.hours(max_age_hours).to_seconds()),
        )
        return config
