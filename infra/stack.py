"""One stack per environment: composes the constructs, holds no resources of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, RemovalPolicies, RemovalPolicy, Stack, Tags
from constructs import Construct

from functions.shared.contract import INGEST_FUNCTION_STEM, KEY_PREFIX, function_name
from infra.config import EnvConfig
from infra.constructs.code import FunctionCode
from infra.constructs.database import Database
from infra.constructs.database_alarms import DatabaseAlarms
from infra.constructs.dead_letter import DeadLetterQueue
from infra.constructs.ingest import Ingest
from infra.constructs.migrate import SchemaMigrations
from infra.constructs.monitoring import Monitoring
from infra.constructs.network import Network
from infra.constructs.status import StatusFunction
from infra.constructs.storage import SignalsBucket
from infra.nag import acknowledge, acknowledge_function, s3_prefix_finding, suppress_known_findings

# Resources whose removal follows the environment's `removalPolicy`. The database follows its own
# deletionProtection (a snapshot when protected) and a created bucket its retainOnDelete.
LOG_GROUP = "AWS::Logs::LogGroup"
REMOVABLE_BY_ENVIRONMENT = (LOG_GROUP, "AWS::SQS::Queue", "AWS::KMS::Key")


class UpsellSignalsStack(Stack):
    """Bucket, network, database, migrations, ingest with its triggers and DLQ, and the alarms."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvConfig, layers_dir: Path | None = None, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        Tags.of(self).add("project", "upsell-signals")
        Tags.of(self).add("environment", config.name)

        storage = SignalsBucket(self, "Signals", settings=config.bucket)
        network = Network(self, "Network", settings=config.vpc, log_retention_days=config.log_retention_days)
        database = Database(
            self,
            "Database",
            settings=config.database,
            network=network,
            log_retention_days=config.log_retention_days,
            instance_identifier=f"upsell-signals-{config.name}",
            snapshot_on_removal=config.removal == "retain",
        )
        code = FunctionCode(self, "Code", architecture=config.architecture, layers_dir=layers_dir)
        dead_letters = DeadLetterQueue(self, "DeadLetters")
        self.migrations = SchemaMigrations(
            self,
            "Migrations",
            environment_name=config.name,
            code=code,
            network=network,
            database=database,
            log_retention_days=config.log_retention_days,
            missing_rows=config.ingest.missing_rows,
        )
        self.ingest = Ingest(
            self,
            "Ingest",
            config=config,
            code=code,
            network=network,
            database=database,
            bucket=storage.bucket,
            bucket_kms_key_arn=storage.kms_key_arn,
            dead_letters=dead_letters,
            after=self.migrations.resource,
        )
        # Invoked by operators only (scripts/status --function): no trigger, nothing waits for it.
        self.status = StatusFunction(
            self,
            "Status",
            environment_name=config.name,
            code=code,
            network=network,
            database=database,
            log_retention_days=config.log_retention_days,
        )
        # Its new code reads the new schema, and its role may read only the secret of an account the
        # migration provisions: both updated only once the migration succeeded.
        self.status.function.function.node.add_dependency(self.migrations.resource)
        self.status.function.role.node.add_dependency(self.migrations.resource)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            environment_name=config.name,
            alarm_email=config.alarm_email,
            ingest=self.ingest.function.function,
            migrate=self.migrations.function.function,
            dead_letter_queue=dead_letters.queue,
        )
        self.database_alarms = DatabaseAlarms(self, "DatabaseAlarms", database=database, topic=self.monitoring.topic)
        self._outputs(storage, database, dead_letters)
        self._acknowledge_findings(config, storage, dead_letters)

    def _outputs(self, storage: SignalsBucket, database: Database, dead_letters: DeadLetterQueue) -> None:
        """What operators and scripts/invoke read from the deployed stack."""
        outputs = {
            "IngestFunctionName": self.ingest.function.function.function_name,
            # What every way in invokes, and what an operator's `aws lambda invoke` names.
            "IngestAliasArn": self.ingest.alias.function_arn,
            # What an SSE-KMS bucket's key policy must admit (docs/deploy.md, "A bucket encrypted with SSE-KMS").
            "IngestRoleArn": self.ingest.function.role.role_arn,
            "MigrateFunctionName": self.migrations.function.function.function_name,
            # What `scripts/status --function` takes: the operator's report, never throttled by the syncs.
            "StatusFunctionName": self.status.function.function.function_name,
            "DeadLetterQueueUrl": dead_letters.queue.queue_url,
            "SignalsBucketName": storage.bucket.bucket_name,
            "DatabaseSecretArn": database.secret.secret_arn,
            "IngestDatabaseSecretArn": database.ingest_secret.secret_arn,
            "StatusDatabaseSecretArn": database.status_secret.secret_arn,
            "AlarmTopicArn": self.monitoring.topic.topic_arn,
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)

    def _acknowledge_findings(self, config: EnvConfig, storage: SignalsBucket, dead_letters: DeadLetterQueue) -> None:
        """cdk-nag findings this design accepts, each with its reason."""
        for function in (self.ingest.function, self.migrations.function, self.status.function):
            acknowledge_function(function)
        acknowledge(
            self.ingest.function.role,
            f"IAM5[Resource::{s3_prefix_finding(self, storage.bucket, KEY_PREFIX)}]",
            "s3:GetObject on the daily files' prefix only, as narrow as a key pattern can be in IAM.",
        )
        acknowledge(
            self.ingest.function.role,
            f"IAM5[Resource::arn:aws:lambda:{self.region}:{config.account or '<AWS::AccountId>'}:function:"
            f"{function_name(INGEST_FUNCTION_STEM, config.name)}:*]",
            "The durable SDK checkpoints and reads back its own executions, whose ARNs extend the function's qualified ARN.",
        )
        migrate_function = self.migrations.function.function.node.default_child
        acknowledge(
            self.migrations.provider_role,
            f"IAM5[Resource::<{self.get_logical_id(migrate_function)}.Arn>:*]",  # type: ignore[arg-type]
            "The CDK provider framework's grant to invoke the migrate function and its versions; it invokes $LATEST only.",
        )
        acknowledge(
            dead_letters, "SQS3", "This queue is the dead-letter queue; a DLQ for it would only move the same messages again."
        )
        self._apply_removal_policy(config)
        suppress_known_findings(self, config)

    def _apply_removal_policy(self, config: EnvConfig) -> None:
        """What outlives `cdk destroy`: prod keeps logs, dead letters and keys; dev leaves nothing behind.

        Log groups are named (/aws/lambda/<function>), so a kept group would block the next create of
        the same name: retained on update and delete, but removed when the create that made them rolls
        back (RetainExceptOnCreate), so a failed first deploy can simply be deployed again.
        """
        if config.removal == "destroy":
            RemovalPolicies.of(self).apply(RemovalPolicy.DESTROY, apply_to_resource_types=list(REMOVABLE_BY_ENVIRONMENT))
            return
        RemovalPolicies.of(self).apply(
            RemovalPolicy.RETAIN, apply_to_resource_types=[kind for kind in REMOVABLE_BY_ENVIRONMENT if kind != LOG_GROUP]
        )
        RemovalPolicies.of(self).apply(RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE, apply_to_resource_types=[LOG_GROUP])
