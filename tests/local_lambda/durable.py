"""A durable function on the local Lambda: the testing SDK's execution service on loopback, the artifact under awslambdaric.

Lambda runs a durable function as a series of invocations of one execution: each invocation gets
the checkpointed state, replays it, and calls the service back (CheckpointDurableExecution,
GetDurableExecutionState) as it goes; a wait or a step retry ends the invocation and the service
invokes again when it is due; a failed invocation is invoked again (Lambda Developer Guide,
"Lambda durable functions", "Basic concepts": "How replay works").

Here the service is the one aws-durable-execution-sdk-python-testing ships for local runs (its
`Executor`, `CheckpointProcessor` and web API, as its `WebRunner` composes them), served on
loopback. The function's own SDK reaches it through boto3's service-specific endpoint variable
`AWS_ENDPOINT_URL_LAMBDA`; every invocation the service makes runs on the local Lambda (the
packaged artifact under awslambdaric, killed at its timeout and memory size). The service's
clock is scaled like the rest of the local Lambda: a wait or a step retry of N seconds lasts
N * time_scale. What the service does on a failed invocation (re-invoke after
`Executor.RETRY_BACKOFF_SECONDS`, at most `MAX_CONSECUTIVE_FAILED_ATTEMPTS` in a row) is the
testing SDK's model of Lambda's, not measured against Lambda.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_durable_execution_sdk_python.execution import DurableExecutionInvocationInput
from aws_durable_execution_sdk_python_testing.checkpoint.processor import CheckpointProcessor
from aws_durable_execution_sdk_python_testing.child_dispatcher import UnconfiguredChildDispatcher
from aws_durable_execution_sdk_python_testing.exceptions import DurableFunctionsTestError
from aws_durable_execution_sdk_python_testing.executor import Executor
from aws_durable_execution_sdk_python_testing.invoker import InvokeResponse, LambdaInvoker
from aws_durable_execution_sdk_python_testing.model import StartDurableExecutionInput
from aws_durable_execution_sdk_python_testing.scheduler import Scheduler
from aws_durable_execution_sdk_python_testing.stores.memory import InMemoryExecutionStore
from aws_durable_execution_sdk_python_testing.web.server import WebServer, WebServiceConfig
from aws_durable_execution_sdk_python_testing.worker.registry import ExecutionRegistry

from scripts.local_durable import ScaledClock
from tests.local_lambda.artifact import FunctionSpec
from tests.local_lambda.environment import InvocationResult
from tests.local_lambda.service import LocalLambda

TERMINAL_FAILURES = ("FAILED", "STOPPED", "TIMED_OUT")


@dataclass
class DurableEvent:
    """One start of a durable execution (an Invoke of the alias) and everything it caused."""

    request_id: str
    payload: Any
    asynchronous: bool
    execution_arn: str = ""
    results: list[InvocationResult] = field(default_factory=list)  # every invocation of the execution, in order
    status: str | None = None  # SUCCEEDED, FAILED, STOPPED, TIMED_OUT once done
    answer: Any = None  # the handler's result, parsed, when it succeeded
    error: dict[str, Any] | None = None  # the execution's error when it did not
    record: Any = None  # the dead-letter message's body once sent: the original event, as-is
    record_attributes: dict[str, Any] | None = None  # and its attributes: RequestID, ErrorCode, ErrorMessage
    duplicates: list[DurableEvent] = field(default_factory=list)  # Lambda delivering the same async event again
    delivery: int = 1  # 2 for a duplicate delivery
    done: threading.Event = field(default_factory=threading.Event)


class _LocalLambdaInvoker(LambdaInvoker):
    """The service's Invoke of the function: one invocation on the local Lambda with the durable invocation input."""

    def __init__(self, record: Any) -> None:
        super().__init__(lambda_client=None)
        self.function: LocalLambda | None = None  # set once the function's process may be told the service's address
        self._record = record

    def invoke(
        self,
        function_name: str,
        input: DurableExecutionInvocationInput,
        endpoint_url: str | None = None,
        tenant_id: str | None = None,
        account_id: str | None = None,
        region_name: str | None = None,
    ) -> InvokeResponse:
        if self.function is None:
            raise DurableFunctionsTestError("the local durable service has no function yet")
        result = self.function.invoke(input.to_json_dict())
        self._record(input.durable_execution_arn, result)
        if result.outcome != "success":
            # A function error, a timeout or an out-of-memory kill: the service invokes the execution again.
            raise DurableFunctionsTestError(f"invocation {result.request_id} failed: {json.dumps(result.payload)}")
        return InvokeResponse.from_output(result.payload, result.request_id)


class DurableFunction:
    """A durable function on the local Lambda: executions started by Invoke, driven by the local durable service."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        log_path: Path,
        sqs_client: Any = None,
        time_scale: float = 1.0,
        duplicate_rate: float = 0.0,
        seed: int = 0,
        qualifier: str = "live",
    ) -> None:
        self.time_scale = time_scale
        self.duplicate_rate = duplicate_rate
        self.qualifier = qualifier
        self._random = random.Random(seed)
        self._sqs = sqs_client
        self._events: dict[str, DurableEvent] = {}
        self._lock = threading.Lock()
        store = InMemoryExecutionStore()
        self._scheduler = Scheduler()
        clock = ScaledClock(time_scale)
        self._registry = ExecutionRegistry(store, self._scheduler)
        processor = CheckpointProcessor(store, self._scheduler, clock=clock)
        invoker = _LocalLambdaInvoker(self._on_invocation)
        self.executor = Executor(
            store=store,
            scheduler=self._scheduler,
            invoker=invoker,
            checkpoint_processor=processor,
            # The local Lambda kills the function at its timeout; the service waits a little longer for the answer.
            invocation_timeout_seconds=spec.timeout_seconds + 60,
            registry=self._registry,
            clock=clock,
            child_dispatcher=UnconfiguredChildDispatcher(),
            region=spec.region,
        )
        processor.add_execution_observer(self.executor)
        processor.set_chained_invoke_preflight(self.executor.preflight_chained_invoke)
        self._scheduler.start()  # type: ignore[no-untyped-call]
        # The web API before the function: its process is told the API's address.
        self._server = WebServer(WebServiceConfig(host="127.0.0.1", port=0, log_level=logging.WARNING), self.executor)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.function = LocalLambda(
            spec.with_environment(AWS_ENDPOINT_URL_LAMBDA=self.endpoint), log_path=log_path, time_scale=time_scale
        )
        invoker.function = self.function

    @property
    def spec(self) -> FunctionSpec:
        return self.function.spec

    @property
    def cold_starts(self) -> int:
        return self.function.cold_starts

    @property
    def log_path(self) -> Path:
        return self.function.log_path

    # -- Invoke of the alias ----------------------------------------------------------------------

    def invoke(self, payload: Any, *, timeout: float = 900.0) -> DurableEvent:
        """A synchronous Invoke: starts an execution and answers when it ends (Lambda caps this at 15 minutes)."""
        event = self._start(payload, asynchronous=False, request_id=str(uuid.uuid4()))
        if not event.done.wait(timeout):
            raise TimeoutError(f"execution {event.execution_arn} still running after {timeout:.0f}s")
        return event

    def invoke_async(self, payload: Any) -> DurableEvent:
        """An asynchronous Invoke (202 Accepted): starts an execution and returns at once."""
        return self._start(payload, asynchronous=True, request_id=str(uuid.uuid4()))

    def stop(self, event: DurableEvent) -> None:
        """StopDurableExecution: the execution ends STOPPED (an async start's event goes to the on-failure destination)."""
        self.executor.stop_execution(event.execution_arn)

    def wait_idle(self, timeout: float) -> None:
        """Until every execution started here (duplicates included) has ended; TimeoutError after `timeout` seconds."""
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            while not deadline.is_set():
                with self._lock:
                    pending = [event for event in self._events.values() if not event.done.is_set()]
                if not pending:
                    return
                pending[0].done.wait(0.1)
            raise TimeoutError(f"the local durable service still runs {len(pending)} executions")
        finally:
            timer.cancel()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.executor.shutdown()
        self._registry.shutdown()
        self._scheduler.stop()  # type: ignore[no-untyped-call]
        self.function.close()

    def __enter__(self) -> DurableFunction:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the service's side --------------------------------------------------------------------------

    def _start(self, payload: Any, *, asynchronous: bool, request_id: str, delivery: int = 1) -> DurableEvent:
        if self.spec.durable_execution_timeout_seconds is None or self.spec.durable_retention_days is None:
            raise ValueError(f"{self.spec.name} has no DurableConfig in the template: run it on LocalLambda")
        event = DurableEvent(request_id=request_id, payload=payload, asynchronous=asynchronous, delivery=delivery)
        start = StartDurableExecutionInput(
            account_id=self.spec.account,
            function_name=self.spec.name,
            function_qualifier=self.qualifier,
            # Lambda names an execution it starts for an Invoke without DurableExecutionName.
            execution_name=str(uuid.uuid4()),
            execution_timeout_seconds=self.spec.durable_execution_timeout_seconds,
            execution_retention_period_days=self.spec.durable_retention_days,
            input=json.dumps(payload),
        )
        with self._lock:
            event.execution_arn = self.executor.start_execution(start).execution_arn or ""
            self._events[event.execution_arn] = event
        threading.Thread(target=self._follow, args=(event,), daemon=True).start()
        return event

    def _on_invocation(self, execution_arn: str, result: InvocationResult) -> None:
        with self._lock:
            self._events[execution_arn].results.append(result)

    def _follow(self, event: DurableEvent) -> None:
        self.executor.wait_until_complete(event.execution_arn)
        details = self.executor.get_execution_details(event.execution_arn)
        event.status = details.status
        event.answer = json.loads(details.result) if details.result else None
        if details.error is not None:
            event.error = {"errorType": details.error.type, "errorMessage": details.error.message}
        if event.asynchronous and event.status in TERMINAL_FAILURES:
            self._send_failure_record(event)
        elif event.asynchronous and event.delivery == 1 and self.duplicate_rate and self._random.random() < self.duplicate_rate:
            # "it's possible for it to receive the same event from Lambda multiple times": a second start.
            event.duplicates.append(self._start(event.payload, asynchronous=True, request_id=event.request_id, delivery=2))
        event.done.set()

    def _send_failure_record(self, event: DurableEvent) -> None:
        """The event, as-is, on the function's dead-letter queue, as Lambda sends a durable function's failed execution's.

        A durable function supports dead-letter queues, not destinations (Lambda Developer Guide, "Invoking
        durable Lambda functions"): when an execution started asynchronously ends FAILED, STOPPED or TIMED_OUT,
        "Lambda sends the original triggering event to the DLQ" ("Best practices for Lambda durable functions",
        Error handling), "as-is, with additional information in attributes": RequestID, ErrorCode (the HTTP
        status code) and ErrorMessage (its first 1 KB) ("Capturing records of Lambda asynchronous invocations",
        Dead-letter queues). Which request id and status code Lambda puts there for a durable execution is not
        documented: here the start's request id and 200.
        """
        message = event.error["errorMessage"] if event.error else f"execution {event.status}"
        event.record = event.payload
        event.record_attributes = {
            "RequestID": {"DataType": "String", "StringValue": event.request_id},
            "ErrorCode": {"DataType": "Number", "StringValue": "200"},
            "ErrorMessage": {"DataType": "String", "StringValue": message.encode()[:1024].decode(errors="ignore")},
        }
        if self.spec.dead_letter_queue_url and self._sqs is not None:
            self._sqs.send_message(
                QueueUrl=self.spec.dead_letter_queue_url,
                MessageBody=json.dumps(event.record),
                MessageAttributes=event.record_attributes,
            )
