"""Schema migrations at deploy time: the migrate function as a CloudFormation custom resource."""

from __future__ import annotations

from aws_cdk import CustomResource, Duration
from constructs import Construct

from infra.constructs.code import FunctionCode, migrations_fingerprint
from infra.constructs.database import Database
from infra.constructs.network import Network
from infra.constructs.vpc_function import VpcFunction

MIGRATE_HANDLER = "functions.migrate.handler.handler"


class SchemaMigrations(Construct):
    """The migrate function and the custom resource that runs it on every deploy that changes migrations/.

    The service token is the function itself: functions/migrate answers CloudFormation through the
    pre-signed ResponseURL (reached via the S3 gateway endpoint), so no CDK provider framework is
    needed. `MigrationsFingerprint` changes with any file in migrations/, which makes CloudFormation
    send Update and the function apply the new versions.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment_name: str,
        code: FunctionCode,
        network: Network,
        database: Database,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = VpcFunction(
            self,
            "Migrate",
            function_name=f"upsell-signals-migrate-{environment_name}",
            description="upsell-signals: apply schema migrations (custom resource at deploy, or manual)",
            handler=MIGRATE_HANDLER,
            code=code,
            network=network,
            database=database,
            # The administrator runs the DDL, and gives the ingest account the password in its secret.
            database_secret=database.secret,
            environment={
                "POWERTOOLS_SERVICE_NAME": "upsell-signals-migrate",
                "INGEST_DB_SECRET_ARN": database.ingest_secret.secret_arn,
            },
            memory_mb=512,
            # Under CloudFormation's custom resource limit (1 hour) with room for a lock wait.
            timeout=Duration.minutes(5),
            log_retention_days=log_retention_days,
            reserved_concurrency=None,
        )
        self.resource = CustomResource(
            self,
            "Schema",
            service_token=self.function.function.function_arn,
            resource_type="Custom::SchemaMigrations",
            # Either changing sends Update: new migrations to apply, or a new ingest secret to provision.
            properties={"MigrationsFingerprint": migrations_fingerprint(), "IngestSecretArn": database.ingest_secret.secret_arn},
        )
        database.grant_read_secret(self.function.role, database.ingest_secret)
        # The migrate function must be able to reach the database and Secrets Manager when it runs.
        # Not on the whole database construct: its secret rotations wait for this resource instead.
        self.resource.node.add_dependency(network)
        self.resource.node.add_dependency(database.security_group)
        database_resource = database.instance.node.default_child
        if database_resource is not None:
            self.resource.node.add_dependency(database_resource)
        for rotation in database.rotations:
            rotation.node.add_dependency(self.resource)
