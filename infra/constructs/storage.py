"""The bucket the daily Parquet files land in: created here (dev) or an existing one."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import CreatedBucket, ImportedBucket


class SignalsBucket(Construct):
    """Private, encrypted, TLS-only, access-logged and sending its events to EventBridge when created; by name when imported.

    An imported bucket's owner turns EventBridge delivery on once (docs/deploy.md); this stack
    never writes an imported bucket's notification configuration.
    """

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
            # A destroyable environment's bucket is emptied first, or CloudFormation cannot delete it.
            auto_delete_objects=not settings.retain_on_delete,
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
            # A destroyable environment's bucket is emptied first, or CloudFormation cannot delete it.
            auto_delete_objects=not settings.retain_on_delete,
        )
        # EventBridge delivery in the bucket's own resource: `event_bridge_enabled=True` would add
        # CDK's Custom::S3BucketNotifications (a Lambda rewriting the configuration) for the same.
        cfn_bucket = self.bucket.node.default_child
        if not isinstance(cfn_bucket, s3.CfnBucket):
            raise TypeError(f"unexpected bucket resource: {type(cfn_bucket).__name__}")
        cfn_bucket.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(event_bridge_enabled=True)
        )
