"""The deployed ingest on the local Lambda, for the end-to-end tests: its stand-ins, its spec, its events.

Only what has no local counterpart is given to the function: the bucket, queue and secret the
template refers to (moto's), the moto endpoint, and no RDS CA bundle for a loopback server.
Everything else (handler, runtime, memory, environment, async retry settings) is the template's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from functions.shared.contract import INGEST_ALIAS, INGEST_FUNCTION_STEM, function_name
from functions.shared.settings import DatabaseSettings
from tests.local_lambda import FunctionSpec, Template

REPO_ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENT = "dev"
# The durable ingest as the stack names it, and the alias every way in invokes.
INGEST_FUNCTION = function_name(INGEST_FUNCTION_STEM, ENVIRONMENT)
INGEST_QUALIFIER = INGEST_ALIAS


@dataclass(frozen=True)
class StandIns:
    """moto's S3, SQS and Secrets Manager on loopback, with this test's own bucket, queue and database secret."""

    endpoint: str
    bucket: str
    s3: Any
    sqs: Any
    secrets: Any
    queue_url: str
    secret_arn: str
    database: DatabaseSettings

    def point_secret_at(self, port: int) -> None:
        """The database secret names `port` (a route the test controls) instead of the server's own."""
        secret = json.loads(self.secrets.get_secret_value(SecretId=self.secret_arn)["SecretString"])
        self.secrets.put_secret_value(SecretId=self.secret_arn, SecretString=json.dumps({**secret, "port": port}))

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every message in the dead-letter queue now (received and deleted), as JSON."""
        return [body for body, _ in self.dead_letters_with_attributes()]

    def dead_letters_with_attributes(self) -> list[tuple[dict[str, Any], dict[str, str]]]:
        """Every message in the dead-letter queue now (received and deleted): its JSON body, its attributes' values."""
        letters: list[tuple[dict[str, Any], dict[str, str]]] = []
        while messages := self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
        ).get("Messages"):
            for message in messages:
                attributes = {name: value["StringValue"] for name, value in message.get("MessageAttributes", {}).items()}
                letters.append((json.loads(message["Body"]), attributes))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return letters


def ingest_spec(template: Template, stand_ins: StandIns, *, timeout_seconds: int | None = None, **environment: str | None) -> FunctionSpec:
    """The template's ingest with this test's stand-ins; `environment` and `timeout_seconds` only where a test says so."""
    spec = template.function_spec(
        INGEST_FUNCTION,
        {"SignalsBucket": stand_ins.bucket, "DeadLettersQueue": stand_ins.queue_url, "DatabaseIngestSecret": stand_ins.secret_arn},
    ).with_environment(
        AWS_ENDPOINT_URL=stand_ins.endpoint,
        DB_TLS_CA_FILE=None,  # the RDS CA bundle cannot verify a local server; loopback goes without TLS
        POWERTOOLS_LOG_LEVEL="WARNING",
        **environment,
    )
    return spec if timeout_seconds is None else replace(spec, timeout_seconds=timeout_seconds)


def file_arrival(bucket: str, key: str) -> dict[str, Any]:
    """EventBridge's "Object Created" for the key, as the stack's rule delivers it (events/ holds AWS's sample)."""
    event: dict[str, Any] = json.loads((REPO_ROOT / "events" / "eventbridge-s3-object-created.json").read_text())
    event["resources"] = [f"arn:aws:s3:::{bucket}"]
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"]["key"] = key
    return event


def wait_until(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Poll `condition` until it returns something truthy (returned); fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f}s for {what}")
        time.sleep(0.05)
    return value
