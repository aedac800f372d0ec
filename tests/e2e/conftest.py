"""Fixtures of the end-to-end tests: the dev template as synthesized, and moto's AWS beside the suite's MariaDB."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import boto3
import pytest

from functions.shared.settings import DatabaseSettings
from tests.e2e.deployed_ingest import ENVIRONMENT, StandIns
from tests.local_lambda import Template, synthesized
from tests.stand_ins import moto_server


@pytest.fixture(scope="session")
def template() -> Template:
    """The dev stack, synthesized for this machine's CPU (cached under build/local-lambda while its sources stay)."""
    return Template(synthesized(ENVIRONMENT), f"UpsellSignals-{ENVIRONMENT}")


@pytest.fixture
def stand_ins(migrated_settings: DatabaseSettings) -> Iterator[StandIns]:
    """moto's S3, SQS and Secrets Manager on loopback: the bucket, the dead-letter queue, the ingest's database secret."""
    # moto keeps one state per process: every name is this test's own.
    unique = uuid.uuid4().hex[:8]
    bucket = f"signals-{unique}"
    with moto_server() as endpoint:
        clients = {
            name: boto3.client(name, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
            for name in ("s3", "sqs", "secretsmanager")
        }
        clients["s3"].create_bucket(Bucket=bucket)
        secret = {
            "host": migrated_settings.host,
            "port": migrated_settings.port,
            "username": migrated_settings.user,
            "password": migrated_settings.password or "",
            "dbname": migrated_settings.name,
        }
        secret_arn = clients["secretsmanager"].create_secret(Name=f"ingest-db-{unique}", SecretString=json.dumps(secret))["ARN"]
        queue_url = clients["sqs"].create_queue(QueueName=f"dead-letters-{unique}")["QueueUrl"]
        yield StandIns(endpoint, bucket, clients["s3"], clients["sqs"], clients["secretsmanager"], queue_url, secret_arn, migrated_settings)
