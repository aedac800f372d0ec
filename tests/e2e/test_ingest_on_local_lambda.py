"""The ingest as deployed: the synthesized artifact on the local Lambda, against the real MariaDB and moto on loopback.

The function's settings are the template's (dev): its handler, timeout, memory, environment and
async retry settings. Only what has no local counterpart is given: the bucket, queue and secret
the template refers to (moto's), the moto endpoint, and no RDS CA bundle for a loopback server.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pymysql
import pytest

from functions.shared.settings import DatabaseSettings
from tests.factories import snowflake_table, write_pyarrow
from tests.local_lambda import LocalLambda, Template, synthesized
from tests.stand_ins import moto_server

REPO_ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENT = "dev"
FUNCTION_NAME = f"upsell-signals-ingest-{ENVIRONMENT}"
MINUTE_IS_A_SECOND = 1 / 60


@dataclass(frozen=True)
class StandIns:
    endpoint: str
    bucket: str
    s3: Any
    sqs: Any
    queue_url: str
    secret_arn: str


@pytest.fixture(scope="module")
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
        yield StandIns(endpoint, bucket, clients["s3"], clients["sqs"], queue_url, secret_arn)


@pytest.fixture
def ingest(template: Template, stand_ins: StandIns, tmp_path: Path) -> Iterator[LocalLambda]:
    """The ingest function as the template defines it, on the local Lambda (a minute of async spacing is a second)."""
    spec = template.function_spec(
        FUNCTION_NAME,
        {"SignalsBucket": stand_ins.bucket, "DeadLettersQueue": stand_ins.queue_url, "DatabaseIngestSecret": stand_ins.secret_arn},
    ).with_environment(
        AWS_ENDPOINT_URL=stand_ins.endpoint,
        DB_TLS_CA_FILE=None,  # the RDS CA bundle cannot verify a local server; loopback goes without TLS
        POWERTOOLS_LOG_LEVEL="WARNING",
    )
    with LocalLambda(spec, log_path=tmp_path / "ingest.log", sqs_client=stand_ins.sqs, time_scale=MINUTE_IS_A_SECOND) as function:
        yield function


def file_arrival(bucket: str, key: str) -> dict[str, Any]:
    """EventBridge's "Object Created" for the key, as the stack's rule delivers it (events/ holds AWS's sample)."""
    event: dict[str, Any] = json.loads((REPO_ROOT / "events" / "eventbridge-s3-object-created.json").read_text())
    event["resources"] = [f"arn:aws:s3:::{bucket}"]
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"]["key"] = key
    return event


def test_the_template_configures_the_local_ingest(template: Template, ingest: LocalLambda) -> None:
    # Given the dev stack as synthesized; Then the local function runs with its handler, limits and retry settings
    spec = ingest.spec
    assert (spec.handler, spec.runtime) == ("functions.ingest.handler.handler", "python3.13")
    assert (spec.timeout_seconds, spec.memory_mb) == (900, 2048)
    assert (spec.max_retry_attempts, spec.max_event_age_seconds) == (2, 6 * 3600)
    assert spec.on_failure_queue_url is not None
    assert spec.environment["WORK_DIR"] == "/tmp"
    # And a value the template refers to without a local stand-in stops the run, naming it
    bare = template.function_spec(FUNCTION_NAME)
    assert {"SIGNALS_BUCKET", "DEAD_LETTER_QUEUE_URL", "DB_SECRET_ARN", "on-failure destination"} <= set(bare.unresolved)
    with pytest.raises(ValueError, match="no local stand-in"):
        LocalLambda(bare, log_path=Path("/dev/null")).invoke({})


def test_a_file_arrival_is_synced_end_to_end_by_the_deployed_artifact(
    ingest: LocalLambda, stand_ins: StandIns, db: pymysql.Connection[Any], tmp_path: Path
) -> None:
    # Given a day's file in the bucket
    key = "passive_upsell_signals/dt=2026-01-30/data.parquet"
    stand_ins.s3.upload_file(str(write_pyarrow(snowflake_table(2_000, seed=5), tmp_path / "day.parquet")), stand_ins.bucket, key)

    # When EventBridge delivers its "Object Created" event asynchronously
    event = ingest.invoke_async(file_arrival(stand_ins.bucket, key))
    ingest.wait_idle(timeout=180)

    # Then one attempt, cold, completed the date: every row published, the run recorded
    [result] = event.results
    assert result.outcome == "success", result.payload
    assert result.cold_start
    with db.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM company_upsell_signals")
        assert cursor.fetchone() == (2_000,)
        cursor.execute("SELECT status, rows_processed FROM upsell_signal_sync_metadata WHERE sync_date = '2026-01-30'")
        assert cursor.fetchone() == ("completed", 2_000)
    # And the same event again, on the warm process, is answered as already done
    again = ingest.invoke(file_arrival(stand_ins.bucket, key))
    assert (again.outcome, again.cold_start) == ("success", False)
    assert "skipped" in json.dumps(again.payload)
    # And nothing reached the dead-letter queue
    assert "Messages" not in stand_ins.sqs.receive_message(QueueUrl=stand_ins.queue_url, WaitTimeSeconds=0)
