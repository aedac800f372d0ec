"""Per-environment settings from cdk.json's context, validated into frozen, keyword-only dataclasses.

cdk.json holds `environments.<name>`; `cdk synth -c env=<name>` (or `python app.py -c env=<name>`)
picks one. Every error names the environment and the setting, so a typo fails synth, not deploy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from functions.shared.settings import DEFAULT_PUBLISH_ROWS_PER_SECOND

Architecture = Literal["arm64", "x86_64"]
# What `cdk destroy` (or removing a resource) does to the stack's data-holding resources.
Removal = Literal["retain", "destroy"]
# The zones a created VPC spans: what CDK gives a stack whose zones it has not looked up.
CREATED_VPC_ZONES = 2


class ConfigError(ValueError):
    """A setting in cdk.json is missing, unknown or malformed; the message says which and where."""


@dataclass(frozen=True, kw_only=True)
class CreatedBucket:
    """A new, private, encrypted bucket owned by this stack."""

    retain_on_delete: bool


@dataclass(frozen=True, kw_only=True)
class ImportedBucket:
    """An existing bucket by name; kms_key_arn when its objects are SSE-KMS encrypted."""

    name: str
    kms_key_arn: str | None


@dataclass(frozen=True, kw_only=True)
class CreatedVpc:
    """A new VPC with isolated subnets only: VPC endpoints instead of a NAT gateway."""

    max_azs: int


@dataclass(frozen=True, kw_only=True)
class ImportedVpc:
    """An existing VPC by id and private subnets (no lookup, so synth stays offline)."""

    vpc_id: str
    availability_zones: tuple[str, ...]
    private_subnet_ids: tuple[str, ...]
    private_subnet_route_table_ids: tuple[str, ...]
    # False when the VPC already has the endpoints (or a NAT): creating a second Secrets Manager
    # endpoint with private DNS in the same VPC fails.
    create_endpoints: bool
    # With create_endpoints false: the security groups of the VPC's own Secrets Manager, SQS and
    # Lambda endpoints, which the stack opens to HTTPS from each of its functions. Required then (an empty
    # list states that the endpoints already admit the subnets, or that a NAT is used instead).
    endpoint_security_group_ids: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class CreatedDatabase:
    """A new RDS MariaDB instance with a generated, rotated secret and TLS required."""

    database_name: str
    # The major line only ("10.11"): RDS picks its default minor version at creation and upgrades
    # minors in the maintenance window, so no template ever names a minor version RDS has retired.
    engine_version: str
    instance_class: str
    allocated_storage_gb: int
    multi_az: bool
    deletion_protection: bool
    backup_retention_days: int
    rotation_days: int


@dataclass(frozen=True, kw_only=True)
class ImportedDatabase:
    """An existing RDS instance: its endpoint, security group and credentials secret."""

    database_name: str
    instance_identifier: str
    endpoint: str
    port: int
    security_group_id: str
    secret_arn: str
    secret_kms_key_arn: str | None
    rotation_days: int  # of the ingest account's secret, which this stack owns


@dataclass(frozen=True, kw_only=True)
class GuardSettings:
    """Kill-switch thresholds passed to the ingest (fractions: 0.05 = 5%)."""

    max_reject_ratio: float
    max_row_count_drift: float
    max_delete_ratio: float


@dataclass(frozen=True, kw_only=True)
class IngestSizing:
    """Lambda sizing and async-invoke behaviour of the ingest function."""

    memory_mb: int
    timeout_seconds: int
    ephemeral_storage_mb: int
    reserved_concurrency: int
    retry_attempts: int
    max_event_age_hours: int
    staging_chunk_rows: int
    staging_load_method: Literal["local_infile", "insert"]
    missing_rows: Literal["keep", "delete"]
    # The publish rate the time budget plans with: a file whose publish would outlast a run is refused.
    publish_rows_per_second: int


@dataclass(frozen=True, kw_only=True)
class EnvConfig:
    """Everything that differs between dev, staging and prod."""

    name: str
    account: str | None
    region: str
    architecture: Architecture
    bucket: CreatedBucket | ImportedBucket
    vpc: CreatedVpc | ImportedVpc
    database: CreatedDatabase | ImportedDatabase
    schedule: str
    alarm_email: str
    guards: GuardSettings
    ingest: IngestSizing
    log_retention_days: int
    # retain: log groups, the DLQ, KMS keys and a created bucket outlive the stack; destroy: all go.
    removal: Removal


class _Section:
    """Reads one JSON object, remembering which keys were used so unknown ones can be refused."""

    def __init__(self, raw: Any, where: str) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where} must be an object, got {type(raw).__name__}")
        self.raw: Mapping[str, Any] = raw
        self.where = where
        self.allowed: set[str] = set()

    def _get(self, key: str, default: Any, required: bool) -> Any:
        self.allowed.add(key)
        if key in self.raw:
            return self.raw[key]
        if required:
            raise ConfigError(f"{self.where}.{key} is missing")
        return default

    def text(self, key: str, default: str | None = None, *, required: bool = True, pattern: str | None = None) -> str:
        value = self._get(key, default, required and default is None)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.where}.{key} must be a non-empty string, got {value!r}")
        if pattern and not re.fullmatch(pattern, value):
            raise ConfigError(f"{self.where}.{key} {value!r} does not look right (expected {pattern})")
        return value

    def optional(self, key: str) -> Any:
        """The raw value, or None when absent (the caller validates it)."""
        return self._get(key, None, False)

    def optional_text(self, key: str, pattern: str | None = None) -> str | None:
        if self._get(key, None, False) is None:
            return None
        return self.text(key, pattern=pattern)

    def integer(self, key: str, default: int | None = None, *, minimum: int = 0, maximum: int | None = None) -> int:
        value = self._get(key, default, default is None)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{self.where}.{key} must be an integer, got {value!r}")
        if value < minimum or (maximum is not None and value > maximum):
            raise ConfigError(f"{self.where}.{key} must be between {minimum} and {maximum}, got {value}")
        return value

    def fraction(self, key: str, default: float) -> float:
        value = self._get(key, default, False)
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
            raise ConfigError(f"{self.where}.{key} must be a number between 0 and 1, got {value!r}")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, default, False)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.where}.{key} must be true or false, got {value!r}")
        return value

    def choice(self, key: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self._get(key, default, False)
        if value not in allowed:
            raise ConfigError(f"{self.where}.{key} must be one of {', '.join(allowed)}, got {value!r}")
        return str(value)

    def strings(self, key: str, pattern: str) -> tuple[str, ...]:
        value = self._get(key, None, True)
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(item, str) and re.fullmatch(pattern, item) for item in value)
        ):
            raise ConfigError(f"{self.where}.{key} must be a non-empty list of strings like {pattern}, got {value!r}")
        return tuple(value)

    def section(self, key: str, *, required: bool = True) -> _Section:
        return _Section(self._get(key, {}, required), f"{self.where}.{key}")

    def close(self) -> None:
        """Refuse keys this reader never asked for: a typo must not be silently ignored."""
        unknown = sorted(set(self.raw) - self.allowed)
        if unknown:
            raise ConfigError(f"{self.where}: unknown setting(s) {unknown}; known: {sorted(self.allowed)}")


LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
ARN = r"arn:aws[\w-]*:[\w-]+:[\w-]*:\d{12}:.+"


# Domains reserved for examples and tests (RFC 2606, RFC 6761): mail to them reaches no one.
PLACEHOLDER_EMAIL = re.compile(r".*@(.+\.)?(example\.(com|net|org)|example|test|invalid|localhost)", re.IGNORECASE)
# The MariaDB major lines this project runs its tests against (Debian's mariadb-server 10.11).
TESTED_MARIADB_MAJORS = ("10.11",)


def _bucket(section: _Section, removal: Removal) -> CreatedBucket | ImportedBucket:
    if section.flag("create", False):
        bucket: CreatedBucket | ImportedBucket = CreatedBucket(
            retain_on_delete=section.flag("retainOnDelete", removal == "retain")
        )
    else:
        bucket = ImportedBucket(
            name=section.text("name", pattern=r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]"),
            kms_key_arn=section.optional_text("kmsKeyArn", pattern=ARN),
        )
    section.close()
    return bucket


def _vpc(section: _Section) -> CreatedVpc | ImportedVpc:
    if section.flag("create", False):
        max_azs = section.integer("maxAzs", 2, minimum=2, maximum=3)
        if max_azs != CREATED_VPC_ZONES:
            # CDK gives a stack whose zones it has not looked up two ("environment-agnostic stacks will
            # be created with access to only 2 AZs"), and `make synth` looks nothing up: 3 was ignored.
            raise ConfigError(
                f"{section.where}.maxAzs must be {CREATED_VPC_ZONES}: synth looks no zones up, and CDK builds such a VPC over two"
            )
        vpc: CreatedVpc | ImportedVpc = CreatedVpc(max_azs=max_azs)
    else:
        vpc = ImportedVpc(
            vpc_id=section.text("vpcId", pattern=r"vpc-[0-9a-f]+"),
            availability_zones=section.strings("availabilityZones", r"[a-z]{2}(-[a-z]+)+-\d[a-z]"),
            private_subnet_ids=section.strings("privateSubnetIds", r"subnet-[0-9a-f]+"),
            private_subnet_route_table_ids=section.strings("privateSubnetRouteTableIds", r"rtb-[0-9a-f]+"),
            create_endpoints=section.flag("createEndpoints", True),
            endpoint_security_group_ids=(),
        )
        if not vpc.create_endpoints:
            vpc = replace(vpc, endpoint_security_group_ids=_endpoint_groups(section))
        if len(vpc.private_subnet_ids) != len(vpc.availability_zones) or len(vpc.private_subnet_route_table_ids) != len(
            vpc.availability_zones
        ):
            raise ConfigError(f"{section.where}: give one private subnet and one route table per availability zone, in order")
    section.close()
    return vpc


def _endpoint_groups(section: _Section) -> tuple[str, ...]:
    """The existing endpoints' security groups: a list must be given, so no one forgets they must admit the functions."""
    value = section.optional("endpointSecurityGroupIds")
    if value is None:
        raise ConfigError(
            f"{section.where}.endpointSecurityGroupIds is missing: with createEndpoints false, list the security groups of "
            "the VPC's Secrets Manager, SQS and Lambda endpoints (the stack admits HTTPS from its functions to them), or [] when "
            "they already admit these subnets or a NAT is used (docs/deploy.md, 'Existing endpoints')"
        )
    if not isinstance(value, list) or not all(isinstance(item, str) and re.fullmatch(r"sg-[0-9a-f]+", item) for item in value):
        raise ConfigError(f"{section.where}.endpointSecurityGroupIds must be a list of security group ids, got {value!r}")
    return tuple(value)


def _engine_version(section: _Section) -> str:
    """The MariaDB major line; a full version (10.11.16) is refused, because RDS retires minor versions."""
    version = section.text("engineVersion", TESTED_MARIADB_MAJORS[0])
    if re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise ConfigError(
            f"{section.where}.engineVersion {version!r} names a minor version: give the major line "
            f"({version.rsplit('.', 1)[0]!r}); RDS upgrades minors itself and retires old ones, and a template naming "
            "a retired minor cannot create an instance"
        )
    if version not in TESTED_MARIADB_MAJORS:
        raise ConfigError(
            f"{section.where}.engineVersion {version!r} is not a line the tests run against ({', '.join(TESTED_MARIADB_MAJORS)})"
        )
    return version


def _database(section: _Section) -> CreatedDatabase | ImportedDatabase:
    name = section.text("databaseName", "upsell_signals", pattern=r"[A-Za-z_][A-Za-z0-9_]{0,63}")
    if section.flag("create", False):
        database: CreatedDatabase | ImportedDatabase = CreatedDatabase(
            database_name=name,
            engine_version=_engine_version(section),
            instance_class=section.text("instanceClass", "t4g.micro", pattern=r"[a-z0-9]+\.[a-z0-9]+"),
            allocated_storage_gb=section.integer("allocatedStorageGb", 20, minimum=20, maximum=65536),
            multi_az=section.flag("multiAz", False),
            deletion_protection=section.flag("deletionProtection", True),
            backup_retention_days=section.integer("backupRetentionDays", 7, minimum=1, maximum=35),
            rotation_days=section.integer("rotationDays", 30, minimum=1, maximum=365),
        )
    else:
        database = ImportedDatabase(
            database_name=name,
            instance_identifier=section.text("instanceIdentifier"),
            endpoint=section.text("endpoint", pattern=r"[a-z0-9.\-]+"),
            port=section.integer("port", 3306, minimum=1, maximum=65535),
            security_group_id=section.text("securityGroupId", pattern=r"sg-[0-9a-f]+"),
            secret_arn=section.text("secretArn", pattern=r"arn:aws[\w-]*:secretsmanager:[\w-]+:\d{12}:secret:.+"),
            secret_kms_key_arn=section.optional_text("secretKmsKeyArn", pattern=ARN),
            rotation_days=section.integer("rotationDays", 30, minimum=1, maximum=365),
        )
    section.close()
    return database


def _guards(section: _Section) -> GuardSettings:
    guards = GuardSettings(
        max_reject_ratio=section.fraction("maxRejectRatio", 0.05),
        max_row_count_drift=section.fraction("maxRowCountDrift", 0.30),
        max_delete_ratio=section.fraction("maxDeleteRatio", 0.10),
    )
    section.close()
    return guards


def _ingest(section: _Section) -> IngestSizing:
    sizing = IngestSizing(
        memory_mb=section.integer("memoryMb", 2048, minimum=128, maximum=10240),
        timeout_seconds=section.integer("timeoutSeconds", 900, minimum=60, maximum=900),
        ephemeral_storage_mb=section.integer("ephemeralStorageMb", 2048, minimum=512, maximum=10240),
        reserved_concurrency=section.integer("reservedConcurrency", 2, minimum=1, maximum=50),
        retry_attempts=section.integer("retryAttempts", 2, minimum=0, maximum=2),
        max_event_age_hours=section.integer("maxEventAgeHours", 6, minimum=1, maximum=6),
        staging_chunk_rows=section.integer("stagingChunkRows", 25_000, minimum=1),
        staging_load_method=section.choice("stagingLoadMethod", "local_infile", ("local_infile", "insert")),  # type: ignore[arg-type]
        missing_rows=section.choice("missingRows", "keep", ("keep", "delete")),  # type: ignore[arg-type]
        publish_rows_per_second=section.integer(
            "publishRowsPerSecond", DEFAULT_PUBLISH_ROWS_PER_SECOND, minimum=1_000, maximum=1_000_000
        ),
    )
    section.close()
    return sizing


def parse_env_config(name: str, raw: Any) -> EnvConfig:
    """Validate one environment's settings (the object under environments.<name> in cdk.json)."""
    root = _Section(raw, f"environments.{name}")
    removal: Removal = root.choice("removalPolicy", "retain", ("retain", "destroy"))  # type: ignore[assignment]
    config = EnvConfig(
        name=name,
        account=root.optional_text("account", pattern=r"\d{12}"),
        region=root.text("region", pattern=r"[a-z]{2}(-[a-z]+)+-\d"),
        architecture=root.choice("architecture", "arm64", ("arm64", "x86_64")),  # type: ignore[arg-type]
        bucket=_bucket(root.section("bucket"), removal),
        vpc=_vpc(root.section("vpc")),
        database=_database(root.section("database")),
        schedule=root.text("schedule", "cron(0 6 * * ? *)", pattern=r"(cron|rate)\(.+\)"),
        alarm_email=root.text("alarmEmail", pattern=r"[^@\s]+@[^@\s]+\.[^@\s]+"),
        guards=_guards(root.section("guards", required=False)),
        ingest=_ingest(root.section("ingest", required=False)),
        log_retention_days=root.integer("logRetentionDays", 90, minimum=1, maximum=3653),
        removal=removal,
    )
    _check_alarm_email(config)
    _check_bucket_key_region(config)
    if config.log_retention_days not in LOG_RETENTION_DAYS:
        raise ConfigError(
            f"environments.{name}.logRetentionDays must be one of {LOG_RETENTION_DAYS} (what CloudWatch Logs accepts)"
        )
    root.close()
    return config


def _check_alarm_email(config: EnvConfig) -> None:
    """Only a disposable environment (removalPolicy destroy) may page an example address."""
    if config.removal == "retain" and PLACEHOLDER_EMAIL.fullmatch(config.alarm_email):
        raise ConfigError(
            f"environments.{config.name}.alarmEmail {config.alarm_email!r} is a placeholder (a reserved example domain): "
            "alarms would reach no one; set the team's real address"
        )


def _check_bucket_key_region(config: EnvConfig) -> None:
    """S3 encrypts with a KMS key in the bucket's region; the grant is for S3 in the stack's region."""
    bucket = config.bucket
    if isinstance(bucket, ImportedBucket) and bucket.kms_key_arn:
        key_region = bucket.kms_key_arn.split(":")[3]
        if key_region != config.region:
            raise ConfigError(
                f"environments.{config.name}.bucket.kmsKeyArn is in {key_region}, the stack in {config.region}: "
                "an SSE-KMS bucket's key is in the bucket's region, and the bucket must be in the stack's"
            )


def load_env_config(context_environments: Any, name: str | None) -> EnvConfig:
    """Pick and validate `name` from the `environments` context; the error lists the known names."""
    if not isinstance(context_environments, Mapping) or not context_environments:
        raise ConfigError('cdk.json has no "environments" object in "context"')
    if not name:
        raise ConfigError(f"choose an environment with -c env=<name>; known: {', '.join(sorted(context_environments))}")
    if name not in context_environments:
        raise ConfigError(f"unknown environment {name!r}; known: {', '.join(sorted(context_environments))}")
    config = parse_env_config(name, context_environments[name])
    _check_server_not_shared(config, context_environments)
    return config


def _check_server_not_shared(config: EnvConfig, context_environments: Mapping[str, Any]) -> None:
    """One environment per database server: the ingest account is the server's, not the database's.

    Every environment's migrate function sets the password of `upsell_ingest` (a server-wide
    account, migrations/0006) from its own secret, and each secret's rotation changes it again:
    two environments on one server would lock each other's ingest out in turn. Endpoints name a
    server anywhere; an instance identifier only within its account and region.
    """
    database = config.database
    if not isinstance(database, ImportedDatabase):
        return
    for other_name, other in sorted(context_environments.items()):
        other_database = other.get("database") if other_name != config.name and isinstance(other, Mapping) else None
        if not isinstance(other_database, Mapping) or other_database.get("create"):
            continue
        accounts = (other.get("account"), config.account)
        same_place = other.get("region") == config.region and (None in accounts or accounts[0] == accounts[1])
        shared = [
            value
            for value, theirs, compared in (
                (database.endpoint, other_database.get("endpoint"), True),
                (database.instance_identifier, other_database.get("instanceIdentifier"), same_place),
            )
            if compared and str(theirs or "").lower() == value.lower()
        ]
        if shared:
            raise ConfigError(
                f"environments.{config.name}.database and environments.{other_name}.database import the same server "
                f"({shared[0]}): the ingest account upsell_ingest is server-wide and each "
                "environment would set its password from its own secret; give each environment its own database server"
            )
