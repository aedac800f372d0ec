"""A Lambda function in the private subnets with its own role, log group and security group."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy, Size
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from functions.shared.environment import Env
from infra.constructs.code import FunctionCode
from infra.constructs.database import Database
from infra.constructs.network import Network
from infra.constructs.retention import retention

# Lambda creates and removes the function's network interfaces with these; EC2 offers no
# resource-level scoping for the Describe calls, so they are granted on "*".
VPC_ENI_ACTIONS = [
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
]


def lambda_log_group_name(function_name: str) -> str:
    """The log group Lambda itself would create for a function of this name."""
    return f"/aws/lambda/{function_name}"


class VpcFunction(Construct):
    """One function: written logs only to its own log group, database reachable, nothing else by default.

    The role is ours rather than CDK's default (which attaches AWSLambdaBasicExecutionRole and
    AWSLambdaVPCAccessExecutionRole, i.e. logs on every log group); callers add what the function needs.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function_name: str,
        description: str,
        handler: str,
        code: FunctionCode,
        network: Network,
        database: Database,
        database_secret: secretsmanager.ISecret,
        environment: dict[str, str],
        memory_mb: int,
        timeout: Duration,
        log_retention_days: int,
        ephemeral_storage_mb: int = 512,
        reserved_concurrency: int | None = None,
        layers: Sequence[lambda_.ILayerVersion] | None = None,
        durable_config: lambda_.DurableConfig | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        # Named as Lambda names a function's default group, because that is where the CDK provider
        # framework's failure message sends a reader ("Logs: /aws/lambda/<function>", aws-cdk-lib
        # custom-resources/lib/provider-framework/runtime/framework.js) and where operators look first.
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=lambda_log_group_name(function_name),
            retention=retention(log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=description)
        self.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[self.log_group.log_group_arn])
        )
        self.role.add_to_principal_policy(iam.PolicyStatement(actions=VPC_ENI_ACTIONS, resources=["*"]))
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=network.vpc, description=description, allow_all_outbound=False
        )
        network.allow_https_out(self.security_group)
        database.allow_from(self.security_group, f"MariaDB from {construct_id}")
        database.grant_read_secret(self.role, database_secret)
        self.function = lambda_.Function(
            self,
            "Function",
            # A fixed name, so operators can type `aws lambda invoke --function-name upsell-signals-ingest-<env>`.
            function_name=function_name,
            description=description,
            runtime=code.runtime,
            architecture=code.architecture,
            handler=handler,
            code=code.code,
            layers=list(code.layers if layers is None else layers),
            role=self.role,
            log_group=self.log_group,
            memory_size=memory_mb,
            timeout=timeout,
            ephemeral_storage_size=Size.mebibytes(ephemeral_storage_mb),
            reserved_concurrent_executions=reserved_concurrency,
            vpc=network.vpc,
            vpc_subnets=network.private_subnets,
            security_groups=[self.security_group],
            tracing=lambda_.Tracing.ACTIVE,
            durable_config=durable_config,
            # Published versions are kept (only the ingest publishes any, for its alias): a durable
            # execution runs to its end on the version it started on, which a deploy must not delete.
            current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.RETAIN),
            environment={
                Env.DB_SECRET_ARN: database_secret.secret_arn,
                Env.DB_NAME: database.database_name,
                Env.DB_TLS_CA_FILE: code.ca_bundle_path,
                **environment,
            },
        )
