"""The Lambda Runtime API (2018-06-01) on loopback, for one execution environment.

The runtime interface client long-polls `invocation/next`, gets the event with its request id,
deadline and function ARN in headers, and posts `invocation/<id>/response` or `/error`, or
`init/error` when the handler cannot be loaded (Lambda Developer Guide, "Using the Lambda
runtime API for custom runtimes").
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"


@dataclass
class Invocation:
    """One event handed to the runtime, and what came back."""

    request_id: str
    payload: bytes
    timeout_seconds: float
    function_arn: str
    trace_id: str
    handed_at: float | None = None  # time.monotonic() when the runtime took it
    deadline_ms: int = 0
    response: bytes | None = None
    error: dict[str, Any] | None = None
    done: threading.Event = field(default_factory=threading.Event)


class RuntimeApi:
    """A Runtime API server for one process: one invocation at a time, as in an execution environment."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._pending: Invocation | None = None
        self._current: Invocation | None = None
        self._closed = False
        self.init_error: dict[str, Any] | None = None
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                if self.path != f"{PREFIX}/invocation/next":
                    self._answer(404, {"errorMessage": f"unknown path {self.path}"})
                    return
                invocation = api._next()
                if invocation is None:  # shutting down: the process is being killed anyway
                    self._answer(410, {"errorMessage": "environment shut down"})
                    return
                body = invocation.payload
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Lambda-Runtime-Aws-Request-Id", invocation.request_id)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(invocation.deadline_ms))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", invocation.function_arn)
                self.send_header("Lambda-Runtime-Trace-Id", invocation.trace_id)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path.removeprefix(PREFIX).strip("/").split("/")
                if parts == ["init", "error"]:
                    api.init_error = _json_or_text(body)
                    self._answer(202, {"status": "OK"})
                    return
                if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    if api._finish(parts[1], body, is_error=parts[2] == "error"):
                        self._answer(202, {"status": "OK"})
                    else:
                        self._answer(400, {"errorMessage": f"no invocation {parts[1]} in progress"})
                    return
                self._answer(404, {"errorMessage": f"unknown path {self.path}"})

            def _answer(self, status: int, document: dict[str, Any]) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def offer(self, invocation: Invocation) -> None:
        """Hand `invocation` to the next `invocation/next` call (the runtime may be waiting already)."""
        with self._lock:
            self._pending = invocation
            self._lock.notify_all()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._lock.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def _next(self) -> Invocation | None:
        with self._lock:
            while self._pending is None and not self._closed:
                self._lock.wait()
            if self._closed or self._pending is None:
                return None
            invocation, self._pending = self._pending, None
            # The deadline starts when the runtime takes the event (init is not billed to it).
            invocation.handed_at = time.monotonic()
            invocation.deadline_ms = int((time.time() + invocation.timeout_seconds) * 1000)
            self._current = invocation
            return invocation

    def _finish(self, request_id: str, body: bytes, *, is_error: bool) -> bool:
        with self._lock:
            invocation = self._current
            if invocation is None or invocation.request_id != request_id:
                return False
            self._current = None
        if is_error:
            invocation.error = _json_or_text(body)
        else:
            invocation.response = body
        invocation.done.set()
        return True


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A runtime killed mid-request resets its connection: that is the point, not an error.
        return


def _json_or_text(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError:
        return {"errorMessage": body.decode(errors="replace")}
    return document if isinstance(document, dict) else {"errorMessage": str(document)}
