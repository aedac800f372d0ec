"""`make demo`: the main job end to end, on a local Lambda, against local stand-ins.

A throwaway MariaDB (started by scripts/with-mariadb), S3 and SQS from moto on loopback, and
the functions as `cdk synth` packages them (dev's template: code, layers, handler, timeout,
memory, environment) running on the Lambda runtime's Python under AWS's runtime interface
client (tests/local_lambda, docs/local-lambda.md). The demo migrates the database, uploads a
generated Snowflake-like file, delivers its arrival as EventBridge does, delivers it again
(skipped), lands a corrected re-export (picked up by itself), runs a dry run, and ends with
what an operator reads. After each invocation it prints what Lambda would report.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from functions.shared.contract import INGEST_ALIAS, INGEST_FUNCTION_STEM, MIGRATE_SERVICE_NAME, function_name  # noqa: E402
from tests.local_lambda import DurableFunction, FunctionSpec, InvocationResult, LocalLambda, Template, synthesized  # noqa: E402

ENVIRONMENT = "dev"
BUCKET = "demo-signals"
SYNC_DATE = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)  # what the 06:00 schedule would pick
ROWS = 50_000
# Lambda's async retries come 1 and 2 minutes after a failure; the demo waits a tenth of that.
TIME_SCALE = 0.1


class DemoFunction:
    """One function of the stack on the local Lambda, printing what Lambda reports after each invocation."""

    def __init__(self, spec: FunctionSpec, log_path: Path, sqs: Any) -> None:
        self.spec = spec
        # A durable function (the ingest) runs its executions on the local durable service, as Lambda does.
        self.durable: DurableFunction | None = None
        self.plain: LocalLambda | None = None
        if spec.durable:
            self.durable = DurableFunction(spec, log_path=log_path, sqs_client=sqs, time_scale=TIME_SCALE, qualifier=INGEST_ALIAS)
        else:
            self.plain = LocalLambda(spec, log_path=log_path, sqs_client=sqs, time_scale=TIME_SCALE)

    def call(self, payload: Any) -> Any:
        """A synchronous invocation's answer, without a report (the status request below)."""
        if self.durable is not None:
            return self.durable.invoke(payload).answer
        assert self.plain is not None
        return self.plain.invoke(payload).payload

    def invoke(self, title: str, payload: Any) -> Any:
        """A synchronous invocation (RequestResponse), as `aws lambda invoke` makes one."""
        print(f"\n== {title}", flush=True)
        if self.durable is not None:
            execution = self.durable.invoke(payload)
            self._report(execution.results)
            print(f"   one durable execution: {len(execution.results)} invocation(s), {execution.status}")
            answer = execution.answer if execution.answer is not None else execution.error
        else:
            assert self.plain is not None
            result = self.plain.invoke(payload)
            self._report([result])
            answer = result.payload
        print(json.dumps(answer, indent=2))
        return answer

    def deliver(self, title: str, event: Any) -> Any:
        """An asynchronous invocation (Event), as EventBridge makes them: one durable execution, as many runs as it needs."""
        print(f"\n== {title}", flush=True)
        assert self.durable is not None, "only the ingest is delivered events"
        execution = self.durable.invoke_async(event)
        self.durable.wait_idle(timeout=self.spec.timeout_seconds * 3)
        self._report(execution.results)
        invocations = len(execution.results)
        print(f"   delivered asynchronously: one durable execution, {invocations} invocation(s), {execution.status}")
        # The dead letter, when the execution failed: the event as-is, the reason in its attributes.
        answer = execution.answer
        if execution.record is not None:
            answer = {"dead_letter": execution.record, "attributes": execution.record_attributes}
        print(json.dumps(answer, indent=2))
        return answer

    def close(self) -> None:
        (self.durable or self.plain).close()  # type: ignore[union-attr]

    def _report(self, results: list[InvocationResult]) -> None:
        for result in results:
            start = f"cold start, init {result.init_duration_ms:.0f} ms" if result.init_duration_ms is not None else "warm start"
            print(
                f"   Lambda REPORT: duration {result.duration_ms:.0f} ms, max memory used {result.max_memory_used_mb} MB "
                f"of {self.spec.memory_mb} MB, {start}, {result.outcome}"
            )


def main() -> int:
    from tests.stand_ins import moto_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    work_dir = Path(tempfile.mkdtemp(prefix="upsell-demo-"))
    try:
        with moto_server() as endpoint:
            return run_demo(endpoint, work_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def function_spec(template: Template, name: str, endpoint: str, queue_url: str) -> FunctionSpec:
    """The template's function by its stack name, its AWS references given moto's stand-ins, the database as DB_HOST says."""
    stand_ins = {"SignalsBucket": BUCKET, "DeadLettersQueue": queue_url}
    spec = template.function_spec(name, stand_ins)
    database = {variable: os.environ[variable] for variable in ("DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DB_NAME")}
    # No secrets and no RDS CA bundle locally: the throwaway server is on loopback.
    return spec.with_environment(
        **database,
        AWS_ENDPOINT_URL=endpoint,
        DB_SECRET_ARN=None,
        INGEST_DB_SECRET_ARN=None,
        STATUS_DB_SECRET_ARN=None,
        DB_TLS_CA_FILE=None,
        POWERTOOLS_LOG_LEVEL=os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
    )


def file_arrival(key: str) -> dict[str, Any]:
    """EventBridge's "Object Created" for the key, as the stack's rule delivers it (AWS's sample in events/)."""
    event: dict[str, Any] = json.loads((REPO_ROOT / "events" / "eventbridge-s3-object-created.json").read_text())
    event["detail"]["bucket"]["name"] = BUCKET
    event["detail"]["object"]["key"] = key
    return event


def run_demo(endpoint: str, work_dir: Path) -> int:
    import boto3

    from functions.shared.contract import KEY_PREFIX, object_key_for
    from functions.status.format import format_status
    from tests.factories import day_two, snowflake_table, write_pyarrow

    clients = {"endpoint_url": endpoint, "region_name": "us-east-1", "aws_access_key_id": "demo", "aws_secret_access_key": "demo"}
    s3, sqs = boto3.client("s3", **clients), boto3.client("sqs", **clients)
    s3.create_bucket(Bucket=BUCKET)
    queue_url = sqs.create_queue(QueueName="upsell-signals-dead-letters")["QueueUrl"]

    print(f"The {ENVIRONMENT} stack as `cdk synth` packages it, run on a local Lambda (docs/local-lambda.md)...", flush=True)
    template = Template(synthesized(ENVIRONMENT), f"UpsellSignals-{ENVIRONMENT}")
    migrate_spec = function_spec(template, function_name(MIGRATE_SERVICE_NAME, ENVIRONMENT), endpoint, queue_url)
    migrate = DemoFunction(migrate_spec, work_dir / "migrate.log", sqs)
    ingest_spec = function_spec(template, function_name(INGEST_FUNCTION_STEM, ENVIRONMENT), endpoint, queue_url)
    ingest = DemoFunction(ingest_spec, work_dir / "ingest.log", sqs)
    spec = ingest.spec
    print(f"ingest: {spec.handler} on {spec.runtime}, timeout {spec.timeout_seconds} s, memory {spec.memory_mb} MB, durable")
    try:
        migrate.invoke("1. migrate the throwaway database", {"action": "up"})

        key = object_key_for(KEY_PREFIX, SYNC_DATE)
        day_file = write_pyarrow(snowflake_table(ROWS, seed=2026), work_dir / "data.parquet")
        s3.upload_file(str(day_file), BUCKET, key)
        print(f"\nUploaded a Snowflake-like file of {ROWS:,} rows to s3://{BUCKET}/{key}")

        ingest.deliver(f"2. the file's arrival, delivered as EventBridge delivers it: {SYNC_DATE} synced", file_arrival(key))
        ingest.deliver("3. the same event again (Lambda may deliver an event twice): skipped, nothing written", file_arrival(key))

        corrected = write_pyarrow(day_two(snowflake_table(ROWS, seed=2026), seed=7), work_dir / "corrected.parquet")
        s3.upload_file(str(corrected), BUCKET, key)
        ingest.deliver(
            "4. a corrected re-export lands (new ETag): picked up by itself, only changed rows written", file_arrival(key)
        )
        payload = {"sync_date": SYNC_DATE.isoformat(), "force_resync": True, "dry_run": True}
        ingest.invoke(f"5. a dry run by hand (manual payload {json.dumps(payload)}): counts, nothing published", payload)

        print("\n== 6. what an operator reads at 06:05: ./scripts/status, then ./scripts/status --date", SYNC_DATE)
        sys.stdout.flush()
        subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "status"), "--days", "3"], check=True)
        print()
        sys.stdout.flush()
        subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "status"), "--date", SYNC_DATE.isoformat()], check=True)
        status_request = {"action": "status", "days": 3}
        print("\n== 7. the same, asked of the function (in AWS: ./scripts/status --function <name>):", json.dumps(status_request))
        print(format_status(ingest.call(status_request)))
    finally:
        migrate.close()
        ingest.close()
    print("\nRun an event of your own through the local Lambda: docs/local-lambda.md, \"Running one event by hand\".")
    return 0


if __name__ == "__main__":
    sys.exit(main())
