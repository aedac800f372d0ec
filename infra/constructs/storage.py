"""The bucket the daily Parquet files land in: created here (dev) or an existing one."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import CreatedBucket, ImportedBucket


class SignalsBucket(Construct):
    """Private, encrypted, TLS-only and access-logged when created; by name when imported."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: CreatedBucket | ImportedBucket) -> None:
        super().__init__(scope, construct_id)
        self.kms_key_arn: str | None = None
        self.bucket: s3.IBucket
        if isinstance(settings, ImportedBucket):
            self.bucket = s3.Bucket.from_bucket_name(self, "Bucket", settings.name)
            self.kms_key_arn = settings.kms_key_arn
            return
        removal = RemovalPolicy.RETAIN if settings.retain_on_delete else RemovalPolicy.DESTROY
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365))],
            removal_policy=removal,
            auto_delete_objects=False,
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="signals/",
            # Re-exports replace data.parquet; old versions are kept a month for investigations.
            lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30))],
            removal_policy=removal,
            auto_delete_objects=False,
        )
