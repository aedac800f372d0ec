"""One execution environment: a runtime process on the runtime's Python, watched and killed as Lambda does.

Memory is enforced on the process's resident set (VmRSS, and its peak VmHWM, from /proc),
sampled every few milliseconds, with SIGKILL past the function's memory size. Not RLIMIT_AS:
Lambda limits the memory the sandbox uses (a cgroup), not address space; pyarrow and glibc
reserve far more virtual memory than they touch, so RLIMIT_AS would fail allocations (a catchable
MemoryError) long before the memory size is really used, where Lambda kills the process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from tests.local_lambda.artifact import FunctionSpec, merged_layers
from tests.local_lambda.runtime_api import Invocation, RuntimeApi

WATCH_INTERVAL_SECONDS = 0.005
PYTHON_MINOR = "3.13"
# Lambda's on-demand init phase may take this long before the invoke is given up on.
INIT_LIMIT_SECONDS = 10.0

Outcome = Literal["success", "error", "timeout", "out_of_memory", "exit", "init_error"]


@dataclass(frozen=True)
class InvocationResult:
    """What one invocation did, as Lambda reports it (the payload a synchronous caller gets)."""

    request_id: str
    outcome: Outcome
    payload: Any
    cold_start: bool
    duration_ms: float
    max_memory_used_mb: int
    init_duration_ms: float | None
    started_at: float  # time.monotonic() when the runtime took the event (or was offered it)
    ended_at: float

    @property
    def function_error(self) -> str | None:
        """The X-Amz-Function-Error a caller sees: "Unhandled" for every failure of the function."""
        return None if self.outcome == "success" else "Unhandled"


class ExecutionEnvironment:
    """A runtime process (`python -m awslambdaric <handler>`) with its own Runtime API, /tmp and log."""

    def __init__(self, spec: FunctionSpec, *, python: Path, runtime_dir: Path, log: TextIO) -> None:
        if spec.unresolved:
            raise ValueError(f"environment values with no local stand-in (give them with with_environment): {spec.unresolved}")
        self.spec = spec
        self._log = log
        self._api = RuntimeApi()
        self._tmp = Path(tempfile.mkdtemp(prefix="lambda-tmp-"))
        self._opt = merged_layers(spec.layer_dirs)
        self._started = time.monotonic()
        self.invocations = 0
        self.process = subprocess.Popen(
            [str(python), "-S", "-s", "-m", "awslambdaric", spec.handler],
            cwd=spec.code_dir,
            env=self._environment(runtime_dir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def invoke(self, payload: bytes, request_id: str) -> InvocationResult:
        """Run one event; kills the process at its timeout or memory size (the environment is then dead)."""
        cold = self.invocations == 0
        self.invocations += 1
        invocation = Invocation(
            request_id=request_id,
            payload=payload,
            timeout_seconds=self.spec.timeout_seconds,
            function_arn=self.spec.arn,
            trace_id=f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0",
        )
        self._write(f"START RequestId: {request_id} Version: $LATEST")
        self._api.offer(invocation)
        outcome, peak_kb = self._watch(invocation)
        ended = time.monotonic()
        handed = invocation.handed_at or ended
        duration_ms = (ended - handed) * 1000
        result = InvocationResult(
            request_id=request_id,
            outcome=outcome,
            payload=self._payload(outcome, invocation),
            cold_start=cold,
            duration_ms=duration_ms,
            max_memory_used_mb=peak_kb // 1024,
            init_duration_ms=(handed - self._started) * 1000 if cold else None,
            started_at=handed,
            ended_at=ended,
        )
        self._report(result)
        return result

    def end_abruptly(self) -> None:
        """SIGKILL to the process group now, whatever it runs: the platform ending the environment (a host
        failure, a deployment). The invocation in flight ends as an exit (`Runtime.ExitError`, "signal: killed")."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):  # it ended by itself meanwhile
                os.killpg(self.process.pid, signal.SIGKILL)

    def shut_down(self) -> None:
        self._kill()
        self._api.close()
        shutil.rmtree(self._tmp, ignore_errors=True)  # an environment's /tmp dies with it

    def _watch(self, invocation: Invocation) -> tuple[Outcome, int]:
        limit_kb = self.spec.memory_mb * 1024
        peak_kb = 0
        while True:
            if invocation.done.wait(WATCH_INTERVAL_SECONDS):
                return ("error" if invocation.error is not None else "success"), max(peak_kb, self._memory_kb()[1])
            rss_kb, hwm_kb = self._memory_kb()
            peak_kb = max(peak_kb, hwm_kb)
            if not self.alive:
                self._api.close()
                return ("init_error" if self._api.init_error is not None else "exit"), peak_kb
            if max(rss_kb, hwm_kb) > limit_kb:
                self._kill()
                return "out_of_memory", peak_kb
            now = time.monotonic()
            started = invocation.handed_at
            if (started is not None and now - started > self.spec.timeout_seconds) or (
                started is None and now - self._started > INIT_LIMIT_SECONDS + self.spec.timeout_seconds
            ):
                self._kill()
                return "timeout", peak_kb

    def _payload(self, outcome: Outcome, invocation: Invocation) -> Any:
        request_id = invocation.request_id
        if outcome == "success":
            return json.loads(invocation.response or b"null")
        if outcome == "error":
            return invocation.error
        if outcome == "init_error":
            return self._api.init_error
        if outcome == "timeout":
            return {"errorType": "Sandbox.Timedout", "errorMessage": f"RequestId: {request_id} Error: Task timed out after {self.spec.timeout_seconds:.2f} seconds"}
        if outcome == "out_of_memory":
            return {"errorType": "Runtime.OutOfMemory", "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"}
        code = self.process.returncode
        # As Lambda words it (Go's names of signals: "signal: killed", "signal: segmentation fault").
        reason = f"signal: {(signal.strsignal(-code) or signal.Signals(-code).name).lower()}" if code < 0 else f"exit status {code}"
        return {"errorType": "Runtime.ExitError", "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: {reason}"}

    def _report(self, result: InvocationResult) -> None:
        self._write(f"END RequestId: {result.request_id}")
        line = (
            f"REPORT RequestId: {result.request_id}\tDuration: {result.duration_ms:.2f} ms\t"
            f"Billed Duration: {int(result.duration_ms) + 1} ms\tMemory Size: {self.spec.memory_mb} MB\t"
            f"Max Memory Used: {result.max_memory_used_mb} MB"
        )
        if result.init_duration_ms is not None:
            line += f"\tInit Duration: {result.init_duration_ms:.2f} ms"
        if result.outcome in ("timeout", "out_of_memory", "exit"):
            line += f"\tStatus: {'timeout' if result.outcome == 'timeout' else 'error'}"
            if result.outcome != "timeout":
                line += f"\tError Type: {result.payload['errorType']}"
        self._write(line)

    def _memory_kb(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) of the runtime process in KiB; zeros once it is gone."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return 0, 0
        values = {line.split(":")[0]: line.split()[1] for line in status.splitlines() if line.startswith(("VmRSS", "VmHWM"))}
        return int(values.get("VmRSS", 0)), int(values.get("VmHWM", 0))

    def _kill(self) -> None:
        if self.alive:
            # The whole session: a kill at the timeout is never something the code can catch.
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def _write(self, line: str) -> None:
        self._log.write(f"{dt.datetime.now(dt.UTC).isoformat(timespec='milliseconds')} {line}\n")
        self._log.flush()

    def _environment(self, runtime_dir: Path) -> dict[str, str]:
        """What Lambda sets (Developer Guide, "Defined runtime environment variables"), then the function's own."""
        spec, task, opt = self.spec, str(self.spec.code_dir), str(self._opt)
        reserved = {
            "_HANDLER": spec.handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "AWS_LAMBDA_RUNTIME_API": self._api.address,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{dt.date.today():%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}",
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            # The execution role's credentials; moto accepts any.
            "AWS_ACCESS_KEY_ID": "local-lambda",
            "AWS_SECRET_ACCESS_KEY": "local-lambda",
            "AWS_SESSION_TOKEN": "local-lambda",
            "LAMBDA_TASK_ROOT": task,
            "LAMBDA_RUNTIME_DIR": str(runtime_dir),
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LD_LIBRARY_PATH": f"{runtime_dir}/lib:{task}:{task}/lib:{opt}/lib",
            # sys.path as on the managed runtime: the code, the layers' two Python folders, then the
            # runtime's own packages. The interpreter runs with -S: no site-packages of its own.
            "PYTHONPATH": os.pathsep.join([task, f"{opt}/python/lib/python{PYTHON_MINOR}/site-packages", f"{opt}/python", str(runtime_dir)]),
        }
        function_environment = {name: self._local_path(value) for name, value in spec.environment.items()}
        for name, value in spec.local_environment.items():
            if value is None:
                function_environment.pop(name, None)
            else:
                function_environment[name] = value
        return {**function_environment, **reserved}

    def _local_path(self, value: str) -> str:
        """/opt, /tmp and /var/task in a value point at this environment's own folders."""
        for root, local in (("/opt", str(self._opt)), ("/tmp", str(self._tmp)), ("/var/task", str(self.spec.code_dir))):
            if value == root or value.startswith(root + "/"):
                return local + value[len(root) :]
        return value
