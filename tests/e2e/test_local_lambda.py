"""The local Lambda itself: real runtime processes under awslambdaric, killed, retried and recorded as Lambda does.

Small handlers (tests/local_lambda/handlers) are packaged as a code folder of their own; one minute
of Lambda's async spacing is one second here (time_scale 1/60).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.local_lambda import FunctionSpec, LocalLambda
from tests.stand_ins import moto_server

HANDLERS = Path(__file__).resolve().parents[1] / "local_lambda" / "handlers"
REPO_ROOT = Path(__file__).resolve().parents[2]
ON_FAILURE_RECORD_AS_AWS_SENDS_IT = REPO_ROOT / "events" / "lambda-on-failure-record.json"
MINUTE_IS_A_SECOND = 1 / 60


@pytest.fixture(scope="module")
def queue() -> Iterator[tuple[Any, str]]:
    """A moto SQS queue on loopback for on-failure records: (client, queue URL)."""
    with moto_server() as endpoint:
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
        yield sqs, sqs.create_queue(QueueName="on-failure")["QueueUrl"]


@pytest.fixture
def make_function(tmp_path: Path, queue: tuple[Any, str]) -> Iterator[Callable[..., LocalLambda]]:
    """A LocalLambda over the behaviour handlers, copied as a function asset; closed after the test."""
    code = tmp_path / "asset"
    shutil.copytree(HANDLERS, code, ignore=shutil.ignore_patterns("__pycache__"))
    started: list[LocalLambda] = []
    sqs, queue_url = queue

    def make(handler: str, *, timeout: int = 3, memory: int = 128, **options: Any) -> LocalLambda:
        spec = FunctionSpec(
            name="behaviours",
            handler=f"behaviours.{handler}",
            runtime="python3.13",
            timeout_seconds=timeout,
            memory_mb=memory,
            code_dir=code,
            layer_dirs=(),
            environment={},
            on_failure_queue_url=queue_url,
        ).with_environment(MARKER_DIR=str(tmp_path))
        spec = replace(spec, **{k: options.pop(k) for k in ("max_event_age_seconds", "max_retry_attempts") if k in options})
        function = LocalLambda(spec, log_path=tmp_path / "function.log", sqs_client=sqs, **options)
        started.append(function)
        return function

    yield make
    for function in started:
        function.close()


def received_records(queue: tuple[Any, str]) -> list[dict[str, Any]]:
    sqs, queue_url = queue
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    for message in messages:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return [json.loads(message["Body"]) for message in messages]


def shape(document: Any) -> Any:
    """Keys all the way down (payloads excluded): what must match AWS's record."""
    if isinstance(document, dict):
        return {key: shape(value) if key not in ("requestPayload", "responsePayload") else "…" for key, value in document.items()}
    return type(document).__name__


def test_a_handler_that_sleeps_past_its_timeout_is_killed_and_reported_as_lambda_does(make_function: Callable[..., LocalLambda]) -> None:
    # Given a function with a 1 second timeout whose handler sleeps for 30
    function = make_function("sleep", timeout=1)

    # When it is invoked
    result = function.invoke({"seconds": 30})

    # Then the process is killed at its timeout (no signal the code could catch), reported as Lambda reports it
    assert result.outcome == "timeout"
    assert result.payload["errorMessage"].endswith("Task timed out after 1.00 seconds")
    assert 1000 <= result.duration_ms < 3000
    assert result.function_error == "Unhandled"
    assert f"REPORT RequestId: {result.request_id}" in function.log_path.read_text()


def test_a_handler_that_allocates_past_its_memory_size_is_killed(make_function: Callable[..., LocalLambda]) -> None:
    # Given a 128 MB function whose handler touches 400 MB
    function = make_function("allocate", memory=128)

    # When it is invoked
    result = function.invoke({"megabytes": 400})

    # Then it is killed at its memory size, as Lambda reports an out-of-memory exit
    assert result.outcome == "out_of_memory"
    assert result.payload["errorType"] == "Runtime.OutOfMemory"
    assert result.payload["errorMessage"].endswith("Runtime exited with error: signal: killed")
    assert result.max_memory_used_mb >= 128


def test_a_handler_within_its_memory_size_is_not_killed(make_function: Callable[..., LocalLambda]) -> None:
    # Given a 256 MB function whose handler touches 64 MB
    function = make_function("allocate", memory=256)
    # When it is invoked
    result = function.invoke({"megabytes": 64})
    # Then it answers
    assert (result.outcome, result.payload) == ("success", {"allocated_mb": 64})


def test_a_warm_start_keeps_a_global_and_the_context_carries_lambdas_values(make_function: Callable[..., LocalLambda]) -> None:
    # Given a function whose module counts its invocations in a global
    function = make_function("count")

    # When it is invoked twice
    first, second = function.invoke({}), function.invoke({})

    # Then the second runs on the same process (warm): the global survived
    assert (first.cold_start, second.cold_start) == (True, False)
    assert (first.payload["invocations"], second.payload["invocations"]) == (1, 2)
    assert first.payload["pid"] == second.payload["pid"]
    # And the context is the one the Runtime API handed over
    assert second.payload["request_id"] == second.request_id
    assert second.payload["function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:behaviours"
    assert second.payload["memory"] == "128"


def test_a_cold_start_after_a_kill_does_not_keep_the_global(make_function: Callable[..., LocalLambda]) -> None:
    # Given a warm function that has counted two invocations
    function = make_function("count", timeout=1)
    warm = [function.invoke({}), function.invoke({})]

    # When an invocation sleeps past the timeout (killed), and the next one arrives
    timed_out = function.invoke({"sleep": 5})
    after = function.invoke({})

    # Then the next invocation is a cold start on a fresh process: the global starts again
    assert [r.payload["invocations"] for r in warm] == [1, 2]
    assert timed_out.outcome == "timeout"
    assert after.cold_start
    assert after.payload["invocations"] == 1
    assert after.payload["pid"] != warm[1].payload["pid"]
    assert function.cold_starts == 2


def test_a_raising_handler_is_retried_twice_at_lambdas_spacing_and_its_record_reaches_the_queue(
    make_function: Callable[..., LocalLambda], queue: tuple[Any, str]
) -> None:
    # Given a handler that always raises, invoked asynchronously (a minute is a second)
    function = make_function("fail", time_scale=MINUTE_IS_A_SECOND)
    received_records(queue)

    # When the event is queued and Lambda's retries run out
    event = function.invoke_async({"sync_date": "2026-01-30"})
    function.wait_idle(timeout=20)

    # Then it ran three times with one request id, the retries one and two "minutes" after the failures
    assert [r.outcome for r in event.results] == ["error"] * 3
    assert {r.request_id for r in event.results} == {event.request_id}
    first_gap = event.results[1].started_at - event.results[0].ended_at
    second_gap = event.results[2].started_at - event.results[1].ended_at
    assert 1.0 <= first_gap < 1.9, first_gap
    assert 2.0 <= second_gap < 2.9, second_gap
    # And the on-failure record on the queue has the shape AWS sends (the same as events/lambda-on-failure-record.json)
    [record] = received_records(queue)
    assert shape(record) == shape(json.loads(ON_FAILURE_RECORD_AS_AWS_SENDS_IT.read_text()))
    assert record["requestContext"] == {
        "requestId": event.request_id,
        "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:behaviours:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    }
    assert record["requestPayload"] == {"sync_date": "2026-01-30"}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    assert record["responsePayload"]["errorMessage"] == "cannot handle {'sync_date': '2026-01-30'}"


def test_a_process_that_exits_mid_event_is_retried_on_a_fresh_process_and_then_succeeds(
    make_function: Callable[..., LocalLambda], queue: tuple[Any, str]
) -> None:
    # Given a handler whose process exits on its first event only
    function = make_function("crash_once_then_count", time_scale=MINUTE_IS_A_SECOND)
    received_records(queue)

    # When an event is queued
    event = function.invoke_async({})
    function.wait_idle(timeout=10)

    # Then the exit is reported as Runtime.ExitError, the retry runs cold, and nothing is recorded as failed
    assert [r.outcome for r in event.results] == ["exit", "success"]
    assert event.results[0].payload["errorMessage"].endswith("Runtime exited with error: exit status 3")
    assert event.results[1].cold_start
    assert received_records(queue) == []


def test_a_duplicated_delivery_runs_the_same_request_again_after_a_success(make_function: Callable[..., LocalLambda]) -> None:
    # Given a function whose every async event is delivered twice
    function = make_function("count", time_scale=MINUTE_IS_A_SECOND, duplicate_rate=1.0)

    # When one event is queued
    event = function.invoke_async({})
    function.wait_idle(timeout=10)

    # Then it ran twice, with one request id, both successes, on the warm process
    assert [(r.outcome, r.request_id) for r in event.results] == [("success", event.request_id)] * 2
    assert [r.payload["invocations"] for r in event.results] == [1, 2]


def test_an_event_older_than_its_maximum_age_is_recorded_without_another_attempt(
    make_function: Callable[..., LocalLambda], queue: tuple[Any, str]
) -> None:
    # Given a raising handler whose events may be at most 60 "seconds" old (one, here): the first retry comes too late
    function = make_function("fail", time_scale=MINUTE_IS_A_SECOND, max_event_age_seconds=30)
    received_records(queue)

    # When an event is queued
    event = function.invoke_async({"n": 1})
    function.wait_idle(timeout=10)

    # Then it ran once and went to the destination as EventAgeExceeded
    assert len(event.results) == 1
    [record] = received_records(queue)
    assert (record["requestContext"]["condition"], record["requestContext"]["approximateInvokeCount"]) == ("EventAgeExceeded", 1)


def test_the_runtime_sees_only_what_lambda_puts_on_its_path(make_function: Callable[..., LocalLambda], tmp_path: Path) -> None:
    # Given a handler that reports its sys.path and environment
    function = make_function("where")

    # When it is invoked
    seen = function.invoke({}).payload

    # Then its path is the code folder, the layers' folders and the runtime's own: no venv, no working tree
    assert seen["sys_path"][0] == str(tmp_path / "asset")
    assert not [entry for entry in seen["sys_path"] if ".venv" in entry or entry.startswith(str(REPO_ROOT / "tests"))]
    assert not [entry for entry in seen["sys_path"] if "site-packages" in entry and "/opt/" not in entry and "local-lambda" not in entry]
    # And Lambda's own variables are set, with the function's environment
    environment = seen["env"]
    assert environment["_HANDLER"] == "behaviours.where"
    assert environment["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.13"
    assert environment["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert environment["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")
    assert environment["MARKER_DIR"] == str(tmp_path)
    assert "VIRTUAL_ENV" not in environment and "DB_HOST" not in environment


def test_a_handler_that_cannot_be_found_is_an_init_error(make_function: Callable[..., LocalLambda]) -> None:
    # Given a handler string naming a function the module does not have
    function = make_function("no_such_handler")

    # When it is invoked
    result = function.invoke({})

    # Then the runtime reports the init error as Lambda's client does, and the next event starts cold
    assert result.outcome == "init_error"
    assert result.payload["errorType"] == "Runtime.HandlerNotFound"
    assert function.invoke({}).cold_start


def test_an_environment_the_platform_kills_mid_event_is_reported_as_an_abrupt_exit_and_retried_cold(
    make_function: Callable[..., LocalLambda], queue: tuple[Any, str], tmp_path: Path
) -> None:
    # Given a warm function, and an event queued whose first run hangs (nothing it does could notice a kill)
    function = make_function("hang_once_then_count", timeout=30, time_scale=MINUTE_IS_A_SECOND)
    received_records(queue)
    (tmp_path / "hanging").touch()
    warm = function.invoke({})
    (tmp_path / "hanging").unlink()
    event = function.invoke_async({})
    assert function.runtime_pid == warm.payload["pid"]

    # When the platform kills the execution environment while the event runs
    deadline = time.monotonic() + 30
    while not (tmp_path / "hanging").exists():
        assert time.monotonic() < deadline, "the event never started"
        time.sleep(0.01)
    function.kill_environment()
    function.wait_idle(timeout=60)

    # Then the attempt is reported as Lambda reports an abrupt exit, and Lambda's retry runs the same request cold
    killed, retry = event.results
    assert (killed.outcome, killed.payload["errorType"]) == ("exit", "Runtime.ExitError")
    assert killed.payload["errorMessage"] == f"RequestId: {event.request_id} Error: Runtime exited with error: signal: killed"
    assert (retry.outcome, retry.cold_start, retry.request_id) == ("success", True, event.request_id)
    assert retry.payload["pid"] != warm.payload["pid"] and retry.payload["invocations"] == 1
    assert retry.started_at - killed.ended_at >= 1.0  # a "minute" after the failure
    assert received_records(queue) == []
    assert "Status: error\tError Type: Runtime.ExitError" in function.log_path.read_text()
