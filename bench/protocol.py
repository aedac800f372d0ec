"""What the parent and its worker subprocesses agree on: the spec in, one result line out."""

from __future__ import annotations

import json
import resource
import sys
from typing import Any

from bench.peak_launcher import PEAK_PREFIX

RESULT_PREFIX = "BENCH_RESULT "


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB.

    VmHWM (the high-water mark of this process's own address space) rather than
    ru_maxrss: Linux carries ru_maxrss over fork and exec, so a worker started by a
    large parent would report at least the parent's size.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(result: dict[str, Any]) -> None:
    """Hand the result to the parent: one prefixed JSON line on stdout."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


def parse_result(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            parsed: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return parsed
    return None


def parse_peak_rss_mb(stdout: str) -> float:
    """The worker's peak RSS in MB, as bench/peak_launcher.py measured it from outside."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(PEAK_PREFIX):
            return int(line[len(PEAK_PREFIX) :]) / 1024
    raise ValueError("no peak RSS line from bench/peak_launcher.py")
