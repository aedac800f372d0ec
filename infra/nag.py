"""cdk-nag (AwsSolutions) acknowledgements: each names the finding and why it is accepted here.

Anything not acknowledged here fails synth (cdk-nag v3 runs as a CDK policy-validation plugin).
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnElement, Stack, Token, Validations
from aws_cdk import aws_s3 as s3
from constructs import IConstruct

from infra.config import CreatedDatabase, EnvConfig

PACK = "AwsSolutions::AwsSolutions"


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Accept one AwsSolutions finding (e.g. "IAM5[Resource::*]") on a construct and its children."""
    Validations.of(construct).acknowledge(Acknowledgment(id=f"{PACK}-{rule}", reason=reason))


def acknowledge_function(function_scope: IConstruct) -> None:
    """What every one of our VPC functions is allowed despite the AwsSolutions rules."""
    acknowledge(
        function_scope,
        "IAM5[Resource::*]",
        "Only the Lambda VPC network-interface actions (ec2:Create/Describe/DeleteNetworkInterface, DescribeSubnets, "
        "Assign/UnassignPrivateIpAddresses) and X-Ray PutTraceSegments/PutTelemetryRecords: neither service supports "
        "resource-level permissions for these calls.",
    )
    acknowledge(
        function_scope,
        "L1",
        "Python 3.13, one behind the newest (3.14): the layers are built and import-tested for cp313 "
        "(layers/build.py LAMBDA_PYTHON_VERSION), and no 3.14 interpreter can be installed where the tests run to test a cp314 "
        "build; a runtime change is a deliberate change of both, not a side effect of a new CDK release.",
    )


def suppress_known_findings(stack: Stack, config: EnvConfig) -> None:
    """Stack-wide and CDK-internal findings that are by design."""
    for singleton in stack.node.children:
        if singleton.node.id.startswith("SchedulerRoleForTarget"):
            acknowledge(
                singleton,
                f"IAM5[Resource::<{_logical_id_of_ingest(stack)}.Arn>:*]",
                "EventBridge Scheduler's role may invoke the ingest function and its versions (the CDK LambdaInvoke target's "
                "grant); it invokes the alias `live` and nothing else.",
            )
    if isinstance(config.database, CreatedDatabase):
        database = stack.node.find_child("Database")
        acknowledge(
            database,
            "RDS11",
            "Port 3306 kept: the security group admits only our two functions and the rotation function, so obscuring the "
            "port adds nothing, and tools and imported databases use the standard port.",
        )
        if not config.database.multi_az:
            acknowledge(
                database,
                "RDS3",
                f"Single-AZ in {config.name} by choice in cdk.json (database.multiAz=false): cost over availability.",
            )
        if not config.database.deletion_protection:
            acknowledge(
                database,
                "RDS10",
                f"{config.name} is disposable by choice in cdk.json (database.deletionProtection=false).",
            )


def s3_prefix_finding(stack: Stack, bucket: s3.IBucket, prefix: str) -> str:
    """How cdk-nag spells an object ARN under `prefix` in a finding, for a created or imported bucket."""
    default_child = bucket.node.default_child
    if isinstance(default_child, CfnElement):
        return f"<{stack.get_logical_id(default_child)}.Arn>/{prefix}*"
    partition = "<AWS::Partition>" if Token.is_unresolved(stack.partition) else stack.partition
    return f"arn:{partition}:s3:::{bucket.bucket_name}/{prefix}*"


def _logical_id_of_ingest(stack: Stack) -> str:
    function = stack.node.find_child("Ingest").node.find_child("DurableIngest").node.find_child("Function")
    return stack.get_logical_id(function.node.default_child)  # type: ignore[arg-type]
