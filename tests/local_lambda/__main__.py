"""Run one event through the local Lambda by hand, on the synthesized artifact, and print what Lambda reports.

    python -m tests.local_lambda ingest events/manual-replay.json
    python -m tests.local_lambda --async --time-scale 0.0167 ingest events/eventbridge-s3-object-created.json
    python -m tests.local_lambda --timeout 5 --memory 256 ingest -

The template's values that name AWS resources come from this shell, as for ./scripts/invoke:
SIGNALS_BUCKET, DEAD_LETTER_QUEUE_URL (also the on-failure destination), DB_HOST, DB_PORT, DB_USER,
DB_PASSWORD, DB_NAME (in place of the database secret), AWS_ENDPOINT_URL (moto, say). Prints the
answer (or the on-failure record; the durable ingest's dead letter) on stdout and Lambda's START/END/REPORT
lines with the function's log on stderr; exits 1 when the function failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from functions.shared.contract import INGEST_ALIAS, INGEST_FUNCTION_STEM, PROJECT_NAME, function_name
from tests.local_lambda.artifact import Template, synthesized
from tests.local_lambda.durable import DurableFunction
from tests.local_lambda.service import LocalLambda

PASSED_THROUGH = ("DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DB_NAME", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "POWERTOOLS_LOG_LEVEL")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("function", choices=("ingest", "migrate"))
    parser.add_argument("event_file", help="a JSON file, or - for stdin")
    parser.add_argument("--env", default="dev", help="cdk.json environment whose template configures the function")
    parser.add_argument("--async", dest="asynchronous", action="store_true", help="invoke as an Event (retries, on-failure record)")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiplies Lambda's retry spacing and event age (1/60: a minute is a second)")
    parser.add_argument("--timeout", type=int, help="seconds, in place of the template's")
    parser.add_argument("--memory", type=int, help="MB, in place of the template's")
    arguments = parser.parse_args()
    payload = json.loads(sys.stdin.read() if arguments.event_file == "-" else Path(arguments.event_file).read_text())

    template = Template(synthesized(arguments.env), f"UpsellSignals-{arguments.env}")
    queue_url = os.environ.get("DEAD_LETTER_QUEUE_URL", "")
    stand_ins = {"SignalsBucket": os.environ.get("SIGNALS_BUCKET", ""), "DeadLettersQueue": queue_url}
    stem = INGEST_FUNCTION_STEM if arguments.function == "ingest" else f"{PROJECT_NAME}-{arguments.function}"
    spec = template.function_spec(function_name(stem, arguments.env), stand_ins)
    local: dict[str, str | None] = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
    # The local server is reached directly (no secret, no RDS CA bundle: loopback only).
    spec = spec.with_environment(
        **local, DB_SECRET_ARN=None, INGEST_DB_SECRET_ARN=None, STATUS_DB_SECRET_ARN=None, DB_TLS_CA_FILE=None
    )
    spec = replace(spec, timeout_seconds=arguments.timeout or spec.timeout_seconds, memory_mb=arguments.memory or spec.memory_mb)

    sqs: Any = None
    if queue_url:
        import boto3

        sqs = boto3.client("sqs", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
    log_path = Path(tempfile.mkstemp(prefix="local-lambda-", suffix=".log")[1])
    if spec.durable:
        # The ingest is a durable function: one execution, followed to its end through every invocation it takes.
        with DurableFunction(spec, log_path=log_path, sqs_client=sqs, time_scale=arguments.time_scale, qualifier=INGEST_ALIAS) as durable:
            execution = durable.invoke_async(payload) if arguments.asynchronous else durable.invoke(payload)
            execution.done.wait()
            if execution.record is not None:  # the dead letter: the event as-is, the reason in its attributes
                answer = {"dead_letter": execution.record, "attributes": execution.record_attributes}
            else:
                answer = execution.answer or execution.error
            failed = execution.status != "SUCCEEDED"
            sys.stderr.write(f"durable execution {execution.execution_arn}: {execution.status}, {len(execution.results)} invocation(s)\n")
        sys.stderr.write(log_path.read_text())
        log_path.unlink()
        print(json.dumps(answer, indent=2))
        return 1 if failed else 0
    with LocalLambda(spec, log_path=log_path, sqs_client=sqs, time_scale=arguments.time_scale) as function:
        if arguments.asynchronous:
            event = function.invoke_async(payload)
            event.done.wait()
            answer, failed = (event.record, True) if event.record else (event.results[-1].payload, False)
        else:
            result = function.invoke(payload)
            answer, failed = result.payload, result.function_error is not None
    sys.stderr.write(log_path.read_text())
    log_path.unlink()
    print(json.dumps(answer, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
