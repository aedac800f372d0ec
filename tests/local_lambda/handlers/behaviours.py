"""Small handlers that behave the ways the local Lambda must answer; packaged as a function code folder."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

WARM_COUNTER = {"invocations": 0}


def sleep(event: dict[str, Any], context: Any) -> dict[str, Any]:
    time.sleep(float(event["seconds"]))
    return {"slept": event["seconds"]}


def allocate(event: dict[str, Any], context: Any) -> dict[str, Any]:
    held = [bytearray(1024 * 1024) for _ in range(int(event["megabytes"]))]  # zero-filled: resident at once
    return {"allocated_mb": len(held)}


def count(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Counts invocations in a module global (survives only on a warm process); sleeps when asked."""
    WARM_COUNTER["invocations"] += 1
    time.sleep(float(event.get("sleep", 0)))
    return {
        "invocations": WARM_COUNTER["invocations"],
        "pid": os.getpid(),
        "request_id": context.aws_request_id,
        "function_arn": context.invoked_function_arn,
        "memory": context.memory_limit_in_mb,
    }


def fail(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise RuntimeError(f"cannot handle {event}")


def crash_once_then_count(event: dict[str, Any], context: Any) -> dict[str, Any]:
    marker = os.path.join(os.environ["MARKER_DIR"], "crashed")
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(3)
    return count(event, context)


def hang_once_then_count(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Marks that it runs, then hangs on its first event only (for something outside to end it)."""
    marker = os.path.join(os.environ["MARKER_DIR"], "hanging")
    if not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(600)
    return count(event, context)


def where(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"sys_path": sys.path, "env": dict(os.environ), "cwd": os.getcwd(), "python": list(sys.version_info[:2])}
