"""The VPC the functions run in and the endpoints that replace a NAT gateway."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import CreatedVpc, ImportedVpc
from infra.constructs.retention import retention

PRIVATE_SUBNET_GROUP = "private"
HTTPS = ec2.Port.tcp(443)


class Network(Construct):
    """A created VPC (isolated subnets, flow logs, endpoints) or an imported one, offline.

    The functions reach AWS through endpoints only: S3 (gateway, free) for the Parquet file,
    Secrets Manager for the database credentials, SQS for the dead-letter queue, and Lambda for
    the durable ingest's checkpoints (its SDK calls CheckpointDurableExecution and
    GetDurableExecutionState on Lambda's API from inside the function: `boto3.client("lambda")` in
    aws_durable_execution_sdk_python/lambda_service.py; Lambda Developer Guide, "Connecting inbound
    interface VPC endpoints for Lambda": any Lambda API operation from the VPC). Lambda's own logs and
    metrics (EMF) and X-Ray segments are shipped by the Lambda service, not from inside the VPC,
    so no Logs or X-Ray endpoint is needed.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: CreatedVpc | ImportedVpc, log_retention_days: int
    ) -> None:
        super().__init__(scope, construct_id)
        self.vpc: ec2.IVpc
        create_endpoints = True
        # Every interface endpoint's security group that must admit HTTPS from our functions.
        self.endpoint_security_groups: list[ec2.ISecurityGroup] = []
        if isinstance(settings, CreatedVpc):
            self.vpc = self._create_vpc(settings, log_retention_days)
        else:
            self.vpc = ec2.Vpc.from_vpc_attributes(
                self,
                "Vpc",
                vpc_id=settings.vpc_id,
                availability_zones=list(settings.availability_zones),
                private_subnet_ids=list(settings.private_subnet_ids),
                private_subnet_route_table_ids=list(settings.private_subnet_route_table_ids),
            )
            create_endpoints = settings.create_endpoints
            # The VPC's own endpoints (cdk.json vpc.endpointSecurityGroupIds): this stack adds an
            # ingress rule per function to each (AWS::EC2::SecurityGroupIngress, removed with the stack).
            self.endpoint_security_groups = [
                ec2.SecurityGroup.from_security_group_id(self, f"ExistingEndpointGroup{index}", group_id, mutable=True)
                for index, group_id in enumerate(settings.endpoint_security_group_ids, start=1)
            ]
        self.private_subnets = ec2.SubnetSelection(subnets=self._private_subnets())
        if create_endpoints:
            self._create_endpoints()

    def _create_vpc(self, settings: CreatedVpc, log_retention_days: int) -> ec2.Vpc:
        vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=settings.max_azs,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name=PRIVATE_SUBNET_GROUP, subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24)
            ],
        )
        flow_log_group = logs.LogGroup(
            self,
            "FlowLogs",
            retention=retention(log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group))
        return vpc

    def _private_subnets(self) -> list[ec2.ISubnet]:
        if self.vpc.isolated_subnets:
            return list(self.vpc.isolated_subnets)
        return list(self.vpc.private_subnets)

    def _create_endpoints(self) -> None:
        self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[self.private_subnets])
        endpoint_security_group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description="Interface endpoints: HTTPS from the upsell-signals functions only",
            allow_all_outbound=False,
        )
        self.endpoint_security_groups.append(endpoint_security_group)
        for name, service in (
            ("SecretsManager", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER),
            ("Sqs", ec2.InterfaceVpcEndpointAwsService.SQS),
            ("Lambda", ec2.InterfaceVpcEndpointAwsService.LAMBDA_),
        ):
            self.vpc.add_interface_endpoint(
                name,
                service=service,
                subnets=self.private_subnets,
                security_groups=[endpoint_security_group],
                private_dns_enabled=True,
                open=False,
            )

    def allow_https_out(self, security_group: ec2.SecurityGroup) -> None:
        """Let a function reach AWS APIs over HTTPS: S3 via the gateway, the rest via interface endpoints.

        The S3 gateway's prefix list id cannot be known offline (it needs a lookup), so the rule is
        443 to anywhere: in isolated subnets the only routes out are the endpoints, so that is all it
        reaches. In an imported VPC it also covers the VPC's own endpoints or NAT.
        """
        security_group.add_egress_rule(ec2.Peer.any_ipv4(), HTTPS, "HTTPS to AWS APIs through the VPC endpoints")
        for endpoint_group in self.endpoint_security_groups:
            endpoint_group.add_ingress_rule(security_group, HTTPS, "HTTPS from an upsell-signals function")
