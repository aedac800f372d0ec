"""The local Lambda service: synchronous and asynchronous invocations of one function.

Asynchronous events are handled as Lambda's event queue does (Developer Guide, "How Lambda
handles errors and retries with asynchronous invocation"): after a function error (a raised
error, a timeout, an out-of-memory or other exit) the event runs again one minute after the
first attempt and two minutes after the second, at most MaximumRetryAttempts times; an event
older than MaximumEventAgeInSeconds is not run again; an event may be delivered twice even when
it succeeded; an event that fails for good goes to the on-failure destination as an invocation
record ("Capturing records of asynchronous invocations"). `time_scale` shrinks every one of
these durations for tests (1/60: a minute is a second).
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tests.local_lambda.artifact import FunctionSpec, lambda_python, runtime_dir
from tests.local_lambda.environment import ExecutionEnvironment, InvocationResult

# Lambda's spacing of the retries of an asynchronous event, in seconds after the failed attempt.
RETRY_DELAYS_SECONDS = (60.0, 120.0)


@dataclass
class AsyncEvent:
    """An event in the asynchronous queue: one request id for every delivery and retry."""

    request_id: str
    payload: Any
    received_at: float  # time.monotonic()
    attempts: int = 0
    results: list[InvocationResult] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    record: dict[str, Any] | None = None  # the on-failure record, once sent


class LocalLambda:
    """One function on local runtime processes: one execution environment at a time, kept warm until killed."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        log_path: Path,
        sqs_client: Any = None,
        time_scale: float = 1.0,
        duplicate_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.spec = spec
        self.time_scale = time_scale
        self.duplicate_rate = duplicate_rate
        self._random = random.Random(seed)
        self._sqs = sqs_client
        self._python = lambda_python()
        self._runtime_dir = runtime_dir(self._python)
        self._log: TextIO = log_path.open("a", encoding="utf-8")
        self.log_path = log_path
        self._environment: ExecutionEnvironment | None = None
        self._invoke_lock = threading.Lock()
        self._queue: list[tuple[float, int, AsyncEvent]] = []
        self._order = itertools.count()
        self._queue_changed = threading.Condition()
        self._in_flight = 0
        self._closed = False
        self.results: list[InvocationResult] = []
        self.cold_starts = 0
        self._dispatcher = threading.Thread(target=self._dispatch, daemon=True)
        self._dispatcher.start()

    # -- synchronous (RequestResponse) ---------------------------------------------------------

    def invoke(self, payload: Any, *, request_id: str | None = None) -> InvocationResult:
        """Run the event now and return what a synchronous caller gets (the response or the error payload)."""
        with self._invoke_lock:
            environment = self._environment
            if environment is None or not environment.alive:
                if environment is not None:
                    environment.shut_down()
                environment = self._environment = ExecutionEnvironment(
                    self.spec, python=self._python, runtime_dir=self._runtime_dir, log=self._log
                )
                self.cold_starts += 1
            result = environment.invoke(json.dumps(payload).encode(), request_id or str(uuid.uuid4()))
            if result.outcome in ("timeout", "out_of_memory", "exit", "init_error"):
                # Lambda resets the environment after a crash: the next event starts cold.
                environment.shut_down()
                self._environment = None
            self.results.append(result)
            return result

    # -- the platform's side ---------------------------------------------------------------------

    @property
    def runtime_pid(self) -> int | None:
        """The runtime process of the execution environment now up (it leads the environment's process group), if any."""
        environment = self._environment
        return environment.process.pid if environment is not None and environment.alive else None

    def kill_environment(self) -> None:
        """The platform ends the execution environment now (SIGKILL to its process group), as a host failure does.

        An invocation in flight ends as Lambda reports an abrupt exit (`Runtime.ExitError`, "Runtime exited
        with error: signal: killed"); an asynchronous event is then retried as after any failure, and the
        next invocation starts cold. Nothing runs: nothing happens.
        """
        environment = self._environment  # not under the invoke lock: the invocation in flight holds it
        if environment is not None:
            environment.end_abruptly()

    # -- asynchronous (Event) ------------------------------------------------------------------

    def invoke_async(self, payload: Any) -> AsyncEvent:
        """Queue the event (202 Accepted); it runs, is retried and recorded in the background."""
        event = AsyncEvent(request_id=str(uuid.uuid4()), payload=payload, received_at=time.monotonic())
        self._schedule(event, delay=0.0)
        return event

    def wait_idle(self, timeout: float) -> None:
        """Until the queue is empty and nothing runs; raises TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._queue_changed:
            while self._queue or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"the local Lambda still has {len(self._queue)} queued and {self._in_flight} running")
                self._queue_changed.wait(left)

    def close(self) -> None:
        with self._queue_changed:
            self._closed = True
            self._queue_changed.notify_all()
        self._dispatcher.join(timeout=5)
        with self._invoke_lock:
            if self._environment is not None:
                self._environment.shut_down()
                self._environment = None
        self._log.close()

    def __enter__(self) -> LocalLambda:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _schedule(self, event: AsyncEvent, *, delay: float) -> None:
        with self._queue_changed:
            heapq.heappush(self._queue, (time.monotonic() + delay, next(self._order), event))
            self._queue_changed.notify_all()

    def _dispatch(self) -> None:
        while True:
            with self._queue_changed:
                while not self._closed and (not self._queue or self._queue[0][0] > time.monotonic()):
                    self._queue_changed.wait(self._queue[0][0] - time.monotonic() if self._queue else None)
                if self._closed:
                    return
                _, _, event = heapq.heappop(self._queue)
                self._in_flight += 1
            try:
                self._attempt(event)
            finally:
                with self._queue_changed:
                    self._in_flight -= 1
                    self._queue_changed.notify_all()

    def _attempt(self, event: AsyncEvent) -> None:
        age = time.monotonic() - event.received_at
        if event.attempts > 0 and age > self.spec.max_event_age_seconds * self.time_scale:
            self._fail(event, "EventAgeExceeded")
            return
        event.attempts += 1
        result = self.invoke(event.payload, request_id=event.request_id)
        event.results.append(result)
        if result.outcome == "success":
            if self.duplicate_rate and self._random.random() < self.duplicate_rate and event.attempts == len(event.results) == 1:
                # "Even if your function doesn't return an error, it's possible for it to receive the
                # same event from Lambda multiple times": a second delivery of the same request.
                self._schedule(event, delay=0.0)
                return
            event.done.set()
            return
        retries_done = sum(1 for r in event.results if r.outcome != "success") - 1
        if retries_done < self.spec.max_retry_attempts:
            self._schedule(event, delay=RETRY_DELAYS_SECONDS[min(retries_done, 1)] * self.time_scale)
            return
        self._fail(event, "RetriesExhausted")

    def _fail(self, event: AsyncEvent, condition: str) -> None:
        event.record = self.failure_record(event, condition)
        if self.spec.on_failure_queue_url and self._sqs is not None:
            self._sqs.send_message(QueueUrl=self.spec.on_failure_queue_url, MessageBody=json.dumps(event.record))
        event.done.set()

    def failure_record(self, event: AsyncEvent, condition: str) -> dict[str, Any]:
        """The invocation record Lambda sends to an on-failure destination, in its documented shape."""
        record: dict[str, Any] = {
            "version": "1.0",
            "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "requestContext": {
                "requestId": event.request_id,
                "functionArn": f"{self.spec.arn}:$LATEST",
                "condition": condition,
                "approximateInvokeCount": event.attempts,
            },
            "requestPayload": event.payload,
        }
        if event.results:
            last = event.results[-1]
            record["responseContext"] = {"statusCode": 200, "executedVersion": "$LATEST", "functionError": last.function_error}
            record["responsePayload"] = last.payload
        return record
