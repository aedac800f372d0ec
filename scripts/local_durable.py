"""One durable execution of a handler, run in-process the way Lambda runs a durable function, for ./scripts/invoke.

Lambda runs a durable function as a series of invocations of one execution: each invocation replays
the checkpointed state and carries on; a wait (the pause between two runs of the ingest) or a step
retry ends the invocation, and the service invokes again when it is due (Lambda Developer Guide,
"Lambda durable functions"). The service here is the one aws-durable-execution-sdk-python-testing
ships for local runs (its `Executor`, `CheckpointProcessor` and in-process invoker, composed as its
`DurableFunctionTestRunner` composes them), with its clock scaled: a wait of N seconds lasts
N * time_scale (the runner itself either waits in full or skips every wait).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_durable_execution_sdk_python_testing.checkpoint.processor import CheckpointProcessor
from aws_durable_execution_sdk_python_testing.child_dispatcher import UnconfiguredChildDispatcher
from aws_durable_execution_sdk_python_testing.client import InMemoryServiceClient
from aws_durable_execution_sdk_python_testing.clock import real_now
from aws_durable_execution_sdk_python_testing.executor import Executor
from aws_durable_execution_sdk_python_testing.invoker import InProcessInvoker
from aws_durable_execution_sdk_python_testing.model import StartDurableExecutionInput
from aws_durable_execution_sdk_python_testing.scheduler import Scheduler
from aws_durable_execution_sdk_python_testing.stores.memory import InMemoryExecutionStore
from aws_durable_execution_sdk_python_testing.worker.registry import ExecutionRegistry

ACCOUNT = "000000000000"
REGION = "local"


class ScaledClock:
    """The service's clock, running 1/time_scale as fast as the wall clock: the 5 s pause lasts 0.5 s at 0.1.

    Like the testing SDK's SkipClock (which skips each timer whole), it stamps history in modelled
    time; unlike it, every timer still takes its scaled share of real time, and arming the same
    wake twice waits the same. The local Lambda (tests/local_lambda/durable.py) runs on it too.
    """

    def __init__(self, time_scale: float) -> None:
        self._scale = time_scale
        self._origin = real_now()

    def now(self) -> dt.datetime:
        return self._origin + (real_now() - self._origin) / self._scale

    def arm(self, wake: dt.datetime) -> float:
        return max((wake - self.now()).total_seconds() * self._scale, 0.0)


@dataclass(frozen=True)
class ExecutionOutcome:
    """How one execution ended: its ARN, status (SUCCEEDED, FAILED, ...), the handler's answer or the error."""

    execution_arn: str
    status: str
    answer: Any
    error: dict[str, str] | None


def run_execution(
    durable_handler: Callable[[Any, Any], Any],
    event: Any,
    *,
    function_name: str,
    qualifier: str,
    execution_timeout_seconds: int,
    time_scale: float = 1.0,
) -> ExecutionOutcome:
    """One execution of `durable_handler` with `event`, as an Invoke of `function_name:qualifier` starts it, to its end."""
    store = InMemoryExecutionStore()
    scheduler = Scheduler()
    scheduler.start()  # type: ignore[no-untyped-call]
    clock = ScaledClock(time_scale)
    registry = ExecutionRegistry(store, scheduler)
    processor = CheckpointProcessor(store=store, scheduler=scheduler, clock=clock)
    invoker = InProcessInvoker(durable_handler, InMemoryServiceClient(processor, registry), region=REGION)
    executor = Executor(
        store=store,
        scheduler=scheduler,
        invoker=invoker,
        checkpoint_processor=processor,
        # Each invocation is bounded by the function's own timeout (the run's context); this only stops a hang.
        invocation_timeout_seconds=execution_timeout_seconds,
        registry=registry,
        clock=clock,
        child_dispatcher=UnconfiguredChildDispatcher(),
        region=REGION,
    )
    processor.add_execution_observer(executor)
    try:
        start = StartDurableExecutionInput(
            account_id=ACCOUNT,
            function_name=function_name,
            function_qualifier=qualifier,
            execution_name=str(uuid.uuid4()),  # Lambda names an execution started by an Invoke without a name
            execution_timeout_seconds=execution_timeout_seconds,
            execution_retention_period_days=1,
            input=json.dumps(event),
        )
        execution_arn = executor.start_execution(start).execution_arn or ""
        executor.wait_until_complete(execution_arn)
        details = executor.get_execution_details(execution_arn)
    finally:
        executor.shutdown()
        registry.shutdown()
        scheduler.stop()  # type: ignore[no-untyped-call]
    error = None if details.error is None else {"error_type": details.error.type or "", "error": details.error.message or ""}
    return ExecutionOutcome(execution_arn, details.status, json.loads(details.result) if details.result else None, error)
