"""In-process retry of a step that failed transiently: capped exponential backoff with jitter, bounded in count and time.

The time bound is what lets a database restart cost a wait rather than the date: an RDS
reboot or Multi-AZ failover leaves the server unreachable for up to about two minutes
(RDS User Guide, "Multi-AZ DB instance deployments"), so a streak of transient failures is
retried for as long (TRANSIENT_WAIT_SECONDS), never past the time the run has left.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from functions.shared.errors import TransientError

logger = logging.getLogger("upsell_signals.ingest")
StepResult = TypeVar("StepResult")

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 20.0
# The cap shrinks with a shorter wait, so that any wait gets about this many tries at least.
TRIES_PER_WAIT = 8


def retrying(
    action: str,
    step: Callable[[], StepResult],
    *,
    retries: int,
    wait_seconds: float,
    sleep: Callable[[float], None],
    fits: Callable[[float], bool] = lambda _seconds: True,
) -> StepResult:
    """Run `step`, retrying TransientError up to `retries` times and `wait_seconds` after the first failure.

    `fits(seconds)` says whether the run still has that long before its margin: a retry that
    would not is not waited for, and the error goes to the caller (then Lambda's retry).
    """
    first_failure: float | None = None
    for retry in range(retries + 1):
        try:
            return step()
        except TransientError as error:
            first_failure = first_failure if first_failure is not None else time.monotonic()
            cap = max(0.1, min(BACKOFF_CAP_SECONDS, wait_seconds / TRIES_PER_WAIT))
            backoff = min(cap, BACKOFF_BASE_SECONDS * 2**retry)
            delay = backoff / 2 + random.uniform(0, backoff / 2)  # noqa: S311 (equal jitter: at least half the backoff)
            waited = time.monotonic() - first_failure
            if retry == retries or waited + delay > wait_seconds or not fits(delay):
                raise
            logger.warning("%s: transient error, retry %d in %.1fs: %s", action, retry + 1, delay, error)
            sleep(delay)
    raise AssertionError("unreachable")
