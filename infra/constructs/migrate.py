"""Schema migrations at deploy time: the migrate function behind the CDK's custom resource provider."""

from __future__ import annotations

from aws_cdk import CustomResource, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from functions.migrate.fingerprint import migrations_fingerprint
from functions.shared.contract import MIGRATE_SERVICE_NAME, function_name
from functions.shared.environment import Env
from infra.constructs.code import FunctionCode
from infra.constructs.database import Database
from infra.constructs.network import Network
from infra.constructs.retention import retention
from infra.constructs.vpc_function import VpcFunction, lambda_log_group_name

MIGRATE_HANDLER = "functions.migrate.handler.handler"
# The migrate function's own limit: a migration, or its wait for the migration lock, past this fails.
MIGRATE_TIMEOUT = Duration.minutes(5)
# CloudFormation gives up on the resource after this (its default is an hour): the framework answers
# within the migrate function's timeout, so this is a backstop for the framework itself failing.
SERVICE_TIMEOUT = Duration.minutes(10)


class SchemaMigrations(Construct):
    """The migrate function and the custom resource that runs it on every deploy that changes migrations/.

    The service token is a `custom_resources.Provider`: its framework function (outside the VPC)
    invokes the migrate function synchronously, once, and answers CloudFormation itself, SUCCESS
    with the returned data or FAILED with the raised error's message. `MigrationsFingerprint`
    changes with any file in migrations/, which makes CloudFormation send Update and the function
    apply the new versions. The function computes the same fingerprint from the migrations/ it
    carries (functions/migrate/fingerprint.py): an Update whose fingerprint is not its own is a
    rollback's (CloudFormation resends the old properties), and moves nothing.
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
        missing_rows: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = VpcFunction(
            self,
            "Migrate",
            function_name=function_name(MIGRATE_SERVICE_NAME, environment_name),
            description="upsell-signals: apply schema migrations (custom resource at deploy, or manual)",
            handler=MIGRATE_HANDLER,
            code=code,
            network=network,
            database=database,
            # The administrator runs the DDL, and gives the ingest and status accounts the passwords in their secrets.
            database_secret=database.secret,
            environment={
                Env.POWERTOOLS_SERVICE_NAME: MIGRATE_SERVICE_NAME,
                Env.INGEST_DB_SECRET_ARN: database.ingest_secret.secret_arn,
                Env.STATUS_DB_SECRET_ARN: database.status_secret.secret_arn,
                # The ingest account may delete signals rows only where the ingest deletes missing ones.
                Env.MISSING_ROWS: missing_rows,
            },
            memory_mb=512,
            timeout=MIGRATE_TIMEOUT,
            log_retention_days=log_retention_days,
            reserved_concurrency=None,
        )
        # A manual `aws lambda invoke --invocation-type Event` must not run `up` again on failure.
        self.function.function.configure_async_invoke(retry_attempts=0)
        provider_name = function_name(f"{MIGRATE_SERVICE_NAME}-provider", environment_name)
        self.provider = self._build_provider(provider_name, log_retention_days)
        self.resource = CustomResource(
            self,
            "Schema",
            service_token=self.provider.service_token,
            service_timeout=SERVICE_TIMEOUT,
            resource_type="Custom::SchemaMigrations",
            # Any of them changing sends Update: new migrations to apply, or a new account secret, or
            # a new password in the same secret (CloudFormation generates one whenever its generator
            # changes), or the ingest's right to delete, to provision.
            properties={
                "MigrationsFingerprint": migrations_fingerprint(),
                "IngestSecretArn": database.ingest_secret.secret_arn,
                "IngestSecretGenerator": database.ingest_secret_generator,
                "IngestMissingRows": missing_rows,
                "StatusSecretArn": database.status_secret.secret_arn,
                "StatusSecretGenerator": database.status_secret_generator,
            },
        )
        database.grant_read_secret(self.function.role, database.ingest_secret)
        database.grant_read_secret(self.function.role, database.status_secret)
        # The migrate function must be able to reach the database and Secrets Manager when it runs.
        # Not on the whole database construct: its secret rotations wait for this resource instead.
        self.resource.node.add_dependency(network)
        self.resource.node.add_dependency(database.security_group)
        database_resource = database.instance.node.default_child
        if database_resource is not None:
            self.resource.node.add_dependency(database_resource)
        for rotation in database.rotations:
            rotation.node.add_dependency(self.resource)

    def _build_provider(self, function_name: str, log_retention_days: int) -> cr.Provider:
        """The CDK provider framework, invoking the migrate function exactly once per request."""
        # Our own group (the environment's retention, no LogRetention function), named as Lambda
        # would name it, and our own role: CDK's default role carries AWSLambdaBasicExecutionRole,
        # i.e. logs on every group.
        log_group = logs.LogGroup(
            self, "ProviderLogs", log_group_name=lambda_log_group_name(function_name), retention=retention(log_retention_days)
        )
        self.provider_role = role = iam.Role(
            self,
            "ProviderRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="upsell-signals: CDK provider framework that runs the schema migration at deploy",
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[log_group.log_group_arn])
        )
        provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.function.function,
            provider_function_name=function_name,
            log_group=log_group,
            framework_on_event_role=role,
        )
        # CloudFormation invokes the framework asynchronously: a framework crash retried by Lambda
        # would call the migration again. No retry; CloudFormation's ServiceTimeout ends the wait.
        framework = provider.node.find_child("framework-onEvent")
        if not isinstance(framework, lambda_.Function):
            raise TypeError(f"unexpected provider framework construct: {type(framework).__name__}")
        framework.configure_async_invoke(retry_attempts=0)
        return provider
