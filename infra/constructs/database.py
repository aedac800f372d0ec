"""The MariaDB the functions write to: created (TLS required, rotated secret) or imported."""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from functions.shared.contract import INGEST_USERNAME, STATUS_USERNAME
from infra.config import CreatedDatabase, ImportedDatabase
from infra.constructs.network import Network
from infra.constructs.retention import retention

# The major lines cdk.json may name (infra/config.py TESTED_MARIADB_MAJORS), as the CDK's own
# major-only versions ("only a major version, without a specific minor version").
MAJOR_VERSIONS = {"10.11": rds.MariaDbEngineVersion.VER_10_11}


def engine(major_version: str) -> rds.IInstanceEngine:
    """MariaDB pinned to its major line only (cdk.json database.engineVersion, "10.11": what the tests run on).

    The template names no minor version and automatic minor upgrades are on: RDS creates the
    line's default minor and moves it in the maintenance window, so a fresh deploy never asks for
    a minor version RDS has retired, and a template never "downgrades" one RDS upgraded (RDS User
    Guide, "Upgrading a DB instance engine version"; CDK EngineVersion: "RDS should use whatever
    version it deems appropriate").
    """
    return rds.DatabaseInstanceEngine.maria_db(version=MAJOR_VERSIONS[major_version])

MASTER_USERNAME = "upsell_admin"
# Characters RDS's own generated secrets leave out, so the password survives any client's quoting.
EXCLUDED_PASSWORD_CHARACTERS = " %+~`#$&*()|[]{}:;<>?!'/@\"\\"  # noqa: S105 - not a password
PASSWORD_KEY, PASSWORD_LENGTH = "password", 32
DEFAULT_PORT = 3306
EXPORTED_LOGS = ("error", "slowquery")


class Database(Construct):
    """Where the data lives, and three accounts: the administrator's (migrate, DDL), the ingest's and the status function's.

    Every secret uses the RDS format (host, port, username, password, dbname). The ingest and
    status secrets are always ours and rotate (single user: the account changes its own
    password); the administrator's rotates too when this stack created the database.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: CreatedDatabase | ImportedDatabase,
        network: Network,
        log_retention_days: int,
        instance_identifier: str,
        snapshot_on_removal: bool = True,
    ) -> None:
        """`snapshot_on_removal`: a created instance removed without deletion protection leaves a final snapshot."""
        super().__init__(scope, construct_id)
        self._snapshot_on_removal = snapshot_on_removal
        self.database_name = settings.database_name
        self.secret_kms_key_arn: str | None = None
        self.instance: rds.IDatabaseInstance
        self.secret: secretsmanager.ISecret
        self.rotations: list[Construct] = []
        # The secrets this stack rotates (a failed rotation alarms) and the instance it created, if any.
        self.rotated_secrets: list[secretsmanager.ISecret] = []
        self.created_instance: rds.DatabaseInstance | None = None
        self.created_settings = settings if isinstance(settings, CreatedDatabase) else None
        if isinstance(settings, CreatedDatabase):
            self._use_created(settings, network, log_retention_days, instance_identifier)
        else:
            self._use_imported(settings)
        self.port = settings.port if isinstance(settings, ImportedDatabase) else DEFAULT_PORT
        host = settings.endpoint if isinstance(settings, ImportedDatabase) else self.instance.db_instance_endpoint_address
        # The first rotation runs as soon as its schedule exists; the stack makes every rotation wait
        # for the migration, which creates the accounts and gives each its secret's password.
        days = settings.rotation_days
        self.ingest_secret, self.ingest_secret_generator = self._rotated_account_secret(
            "Ingest", INGEST_USERNAME, "data changes on the ingest's tables only", host, network=network, rotation_days=days
        )
        self.status_secret, self.status_secret_generator = self._rotated_account_secret(
            "Status", STATUS_USERNAME, "reads the ledger the status report comes from", host, network=network, rotation_days=days
        )

    def _use_created(
        self, settings: CreatedDatabase, network: Network, log_retention_days: int, instance_identifier: str
    ) -> None:
        """A database of this stack's own: its security group, instance and generated administrator secret."""
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=network.vpc,
            description="MariaDB: only the upsell-signals functions",
            allow_all_outbound=False,
        )
        instance = self._create(settings, network, log_retention_days, instance_identifier)
        self.instance = self.created_instance = instance
        if instance.secret is None:
            raise RuntimeError("the created database has no generated secret")
        self.secret = instance.secret
        self.rotated_secrets.append(instance.secret)

    def _use_imported(self, settings: ImportedDatabase) -> None:
        """An existing database: its security group, instance and administrator secret, by reference."""
        self.security_group = ec2.SecurityGroup.from_security_group_id(  # type: ignore[assignment]
            self, "SecurityGroup", settings.security_group_id, mutable=True
        )
        self.instance = rds.DatabaseInstance.from_database_instance_attributes(
            self,
            "Instance",
            instance_identifier=settings.instance_identifier,
            instance_endpoint_address=settings.endpoint,
            port=settings.port,
            security_groups=[self.security_group],
        )
        self.secret = secretsmanager.Secret.from_secret_complete_arn(self, "Secret", settings.secret_arn)
        self.secret_kms_key_arn = settings.secret_kms_key_arn

    def _rotated_account_secret(
        self, name: str, username: str, rights: str, host: str, *, network: Network, rotation_days: int
    ) -> tuple[secretsmanager.Secret, dict[str, Any]]:
        """An account's secret (RDS format), password generated here, rotated by the account itself, and its generator.

        CloudFormation generates a new password whenever any of the generator's settings changes,
        the template's fields beside the password included (a new endpoint, port or database
        name): the migration carries them, so that such a change sends it Update to provision it.
        """
        template = Stack.of(self).to_json_string(
            {
                "engine": "mariadb",
                "username": username,
                "host": host,
                "port": self.port,
                "dbname": self.database_name,
                # TLS, and no plaintext fallback, for the rotation function too: Secrets Manager's
                # rotation templates try TLS and fall back to a plain connection when the secret
                # has no "ssl" key (get_ssl_config), and would send the new password in the clear
                # to an imported server that allows it.
                "ssl": True,
            }
        )
        secret = secretsmanager.Secret(
            self,
            f"{name}Secret",
            description=f"upsell-signals: the {username} account ({rights})",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=template,
                generate_string_key=PASSWORD_KEY,
                exclude_characters=EXCLUDED_PASSWORD_CHARACTERS,
                password_length=PASSWORD_LENGTH,
            ),
        )
        generator = {
            "SecretStringTemplate": template,
            "GenerateStringKey": PASSWORD_KEY,
            "ExcludeCharacters": EXCLUDED_PASSWORD_CHARACTERS,
            "PasswordLength": PASSWORD_LENGTH,
        }
        # Single user: the account changes its own password, which needs no right of its own.
        rotation = secretsmanager.SecretRotation(
            self,
            f"{name}Rotation",
            application=secretsmanager.SecretRotationApplication.MARIADB_ROTATION_SINGLE_USER,
            secret=secret,
            target=self.instance,
            vpc=network.vpc,
            vpc_subnets=network.private_subnets,
            endpoint=_secrets_manager_endpoint(network),
            security_group=self._rotation_security_group(network),
            automatically_after=Duration.days(rotation_days),
            # The rotation generates every later password: the same characters left out as the first's.
            exclude_characters=EXCLUDED_PASSWORD_CHARACTERS,
        )
        self.rotations.append(rotation)
        self.rotated_secrets.append(secret)
        return secret, generator

    def _create(
        self, settings: CreatedDatabase, network: Network, log_retention_days: int, instance_identifier: str
    ) -> rds.DatabaseInstance:
        mariadb = engine(settings.engine_version)
        parameters = rds.ParameterGroup(
            self,
            "Parameters",
            engine=mariadb,
            description="upsell-signals: TLS required, LOAD DATA LOCAL INFILE allowed for staging",
            parameters={
                # RDS instance parameter groups take 1/0 here (the MariaDB docs say ON): refuse plain TCP.
                "require_secure_transport": "1",
                # The ingest stages chunks with LOAD DATA LOCAL INFILE (STAGING_LOAD_METHOD).
                "local_infile": "1",
            },
        )
        instance = rds.DatabaseInstance(
            self,
            "Instance",
            engine=mariadb,
            instance_type=ec2.InstanceType(settings.instance_class),
            vpc=network.vpc,
            vpc_subnets=network.private_subnets,
            security_groups=[self.security_group],
            publicly_accessible=False,
            credentials=rds.Credentials.from_generated_secret(MASTER_USERNAME),
            database_name=settings.database_name,
            parameter_group=parameters,
            allocated_storage=settings.allocated_storage_gb,
            storage_type=rds.StorageType.GP3,
            storage_encrypted=True,
            multi_az=settings.multi_az,
            deletion_protection=settings.deletion_protection,
            backup_retention=Duration.days(settings.backup_retention_days),
            # An environment that retains what it removes keeps a snapshot even without deletion protection.
            removal_policy=(
                RemovalPolicy.SNAPSHOT if settings.deletion_protection or self._snapshot_on_removal else RemovalPolicy.DESTROY
            ),
            instance_identifier=instance_identifier,
            cloudwatch_logs_exports=list(EXPORTED_LOGS),
            auto_minor_version_upgrade=True,
            ca_certificate=rds.CaCertificate.RDS_CA_RSA2048_G1,
        )
        # CDK's schema check and cfn-lint's E3691 list full versions only; RDS takes the major line and
        # "defaults to a recent release of the major version" (cfn-lint issue #3849 quotes the RDS guide).
        cfn_instance = instance.node.default_child
        if isinstance(cfn_instance, rds.CfnDBInstance):
            cfn_instance.add_metadata("cfn-lint", {"config": {"ignore_checks": ["E3691"]}})
        Validations.of(instance).acknowledge(
            Acknowledgment(
                id="CloudFormation-Validate::E9006",
                reason="EngineVersion is the major line only (10.11) on purpose: RDS chooses and upgrades the minor version.",
            )
        )
        # RDS writes to /aws/rds/instance/<id>/<log>; creating the groups first gives them a retention
        # without CDK's LogRetention helper function (one more Lambda with a wildcard role).
        for log in EXPORTED_LOGS:
            log_group = logs.LogGroup(
                self,
                f"{log.title()}Logs",
                log_group_name=f"/aws/rds/instance/{instance_identifier}/{log}",
                retention=retention(log_retention_days),
                removal_policy=RemovalPolicy.DESTROY,
            )
            instance.node.add_dependency(log_group)
        rotation = instance.add_rotation_single_user(
            automatically_after=Duration.days(settings.rotation_days),
            vpc_subnets=network.private_subnets,
            # The hosted rotation function calls Secrets Manager through our interface endpoint.
            endpoint=_secrets_manager_endpoint(network),
            security_group=self._rotation_security_group(network),
        )
        self.rotations.append(rotation)
        return instance

    def _rotation_security_group(self, network: Network) -> ec2.SecurityGroup:
        """One group per rotation function: CDK opens the database port to it, and it may reach the endpoints."""
        index = len(self.rotations) + 1
        group = ec2.SecurityGroup(
            self,
            f"RotationSecurityGroup{index}",
            vpc=network.vpc,
            description="Secret rotation function",
            allow_all_outbound=False,
        )
        network.allow_https_out(group)
        return group

    def allow_from(self, security_group: ec2.SecurityGroup, description: str) -> None:
        """Open the database port from one function's security group, and that group's egress to it."""
        self.security_group.add_ingress_rule(security_group, ec2.Port.tcp(self.port), description)
        security_group.add_egress_rule(self.security_group, ec2.Port.tcp(self.port), "MariaDB")

    def grant_read_secret(self, role: iam.IRole, secret: secretsmanager.ISecret) -> None:
        """secretsmanager:GetSecretValue on one secret (plus kms:Decrypt when the imported admin secret uses a customer key)."""
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"], resources=[secret.secret_arn])
        )
        if secret is self.secret and self.secret_kms_key_arn:
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["kms:Decrypt"],
                    resources=[self.secret_kms_key_arn],
                    conditions={"StringEquals": {"kms:ViaService": f"secretsmanager.{self.instance.stack.region}.amazonaws.com"}},
                )
            )


def _secrets_manager_endpoint(network: Network) -> ec2.IInterfaceVpcEndpoint | None:
    endpoint = network.vpc.node.try_find_child("SecretsManager")
    return endpoint if isinstance(endpoint, ec2.InterfaceVpcEndpoint) else None
