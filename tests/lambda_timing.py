"""Lambda's timings as the deployed stack meets them, scaled down for tests: one place, every relation kept.

A test that waits "until the lease ran out" before the next run proves nothing about AWS,
where Lambda's retry comes at its own time whatever the lease. Tests take these values
instead, and `tests/unit/test_lambda_timing.py` fails if a scaled relation no longer holds
the way the deployed one does.
"""

from __future__ import annotations

from functions.shared.contract import CLAIM_LEASE_SECONDS, LAMBDA_FIRST_RETRY_SECONDS
from functions.shared.settings import (
    DEFAULT_PUBLISH_LOCK_TIMEOUT_SECONDS,
    DEFAULT_TIME_BUDGET_MARGIN_SECONDS,
    DEFAULT_TRANSIENT_RETRIES,
    DEFAULT_TRANSIENT_WAIT_SECONDS,
)

SCALE = 0.1  # 60 s of Lambda's are 6 s of a test's

LEASE_SECONDS = round(CLAIM_LEASE_SECONDS * SCALE)  # what the stack sets, scaled
FIRST_RETRY_SECONDS = LAMBDA_FIRST_RETRY_SECONDS * SCALE  # Lambda's first retry after a failure
SECOND_RETRY_SECONDS = 2 * LAMBDA_FIRST_RETRY_SECONDS * SCALE  # and its second, after the first retry failed

# An RDS reboot or Multi-AZ failover: unreachable up to about two minutes (RDS User Guide).
DATABASE_OUTAGE_SECONDS = 120 * SCALE
# The in-process wait a streak of transient faults gets, as deployed, scaled.
TRANSIENT_WAIT_SECONDS = round(DEFAULT_TRANSIENT_WAIT_SECONDS * SCALE)
TRANSIENT_RETRIES = DEFAULT_TRANSIENT_RETRIES

# The function's timeout as deployed (cdk.json's largest, Lambda's maximum) and the margin the time budget keeps.
FUNCTION_TIMEOUT_SECONDS = 900 * SCALE
TIME_BUDGET_MARGIN_SECONDS = round(DEFAULT_TIME_BUDGET_MARGIN_SECONDS * SCALE)
# How long a publish waits for the publish lock (another date's publish) before failing as transient.
PUBLISH_LOCK_WAIT_SECONDS = round(DEFAULT_PUBLISH_LOCK_TIMEOUT_SECONDS * SCALE)
