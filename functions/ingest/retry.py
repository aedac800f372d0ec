"""In-process retry of a step that failed transiently: capped exponential backoff, full jitter."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TypeVar

from functions.shared.errors import TransientError

logger = logging.getLogger("upsell_signals.ingest")
StepResult = TypeVar("StepResult")

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 20.0


def retrying(action: str, step: Callable[[], StepResult], *, retries: int, sleep: Callable[[float], None]) -> StepResult:
    """Run `step`, retrying TransientError up to `retries` times with capped exponential backoff and full jitter."""
    for retry in range(retries + 1):
        try:
            return step()
        except TransientError as error:
            if retry == retries:
                raise
            delay = random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**retry))  # noqa: S311
            logger.warning("%s: transient error, retry %d in %.1fs: %s", action, retry + 1, delay, error)
            sleep(delay)
    raise AssertionError("unreachable")
