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

from functions.shared.errors import DatabaseUnreachable, TransientError

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
    answers: Callable[[], int] = lambda: 0,
) -> StepResult:
    """Run `step`, retrying TransientError up to `retries` times in all and `wait_seconds` into a streak of failures.

    A streak starts at its first failure. An unreachable database that has answered again
    since the last failure (`answers`, a count of the statements it answered, has moved)
    starts a new streak: a second restart is an outage of its own, not the first one
    lasting. `fits(seconds)` says whether the run still has that long before its margin: a
    retry that would not is not waited for, and the error goes to the caller.
    """
    streak_started: float | None = None
    streak_retries = 0
    answered_at_failure: int | None = None
    for retry in range(retries + 1):
        try:
            return step()
        except TransientError as error:
            answered = answers()
            back_since = isinstance(error, DatabaseUnreachable) and answered != answered_at_failure
            if streak_started is None or back_since:
                streak_started, streak_retries = time.monotonic(), 0
            answered_at_failure = answered
            cap = max(0.1, min(BACKOFF_CAP_SECONDS, wait_seconds / TRIES_PER_WAIT))
            backoff = min(cap, BACKOFF_BASE_SECONDS * 2**streak_retries)
            delay = backoff / 2 + random.uniform(0, backoff / 2)  # noqa: S311 (equal jitter: at least half the backoff)
            waited = time.monotonic() - streak_started
            if retry == retries or waited + delay > wait_seconds or not fits(delay):
                raise
            logger.warning("%s: transient error, retry %d in %.1fs: %s", action, retry + 1, delay, error)
            streak_retries += 1
            sleep(delay)
    raise AssertionError("unreachable")
