"""Facts the runtime and the infrastructure must agree on, written once: both import them from here.

Pure constants (no AWS or database imports), so infra/ can read them without the runtime's packages.
"""

from __future__ import annotations

import datetime as dt
import math
import re

# Each function's service name (Powertools' `service`; the ingest's is the metrics' `service`
# dimension the alarms filter on) and, with the environment after it, its fixed function name.
PROJECT_NAME = "upsell-signals"
INGEST_SERVICE_NAME = f"{PROJECT_NAME}-ingest"
MIGRATE_SERVICE_NAME = f"{PROJECT_NAME}-migrate"
STATUS_SERVICE_NAME = f"{PROJECT_NAME}-status"
METRICS_NAMESPACE = "UpsellSignals"
# Every metric carries it (beside Powertools' "service"), so environments sharing an account do
# not mix; the alarms and the dashboard (infra/constructs/monitoring.py) select on both.
ENVIRONMENT_DIMENSION = "environment"

# Where Data Engineering unloads each day's file: <prefix>dt=YYYY-MM-DD/data.parquet
KEY_PREFIX = "passive_upsell_signals/"
KEY_DATE_FOLDER = "dt="
KEY_FILE_NAME = "data.parquet"
KEY_SUFFIX = f"/{KEY_FILE_NAME}"
KEY_PATTERN = re.compile(rf"^(?P<prefix>.*?){re.escape(KEY_DATE_FOLDER)}(?P<date>[^/]*){re.escape(KEY_SUFFIX)}\Z")

# The ingest's own database account: created, locked, by migrations/0006_create_ingest_user,
# given its password from the ingest secret by the migrate function. A server-wide name.
INGEST_USERNAME = "upsell_ingest"
# The status function's: SELECT on the ledger's tables only (migrations/0014_create_status_user),
# its password from the status secret, set the same way.
STATUS_USERNAME = "upsell_status"

# The named lock a publish holds while it writes the signals table; the migrator takes it too,
# so a schema change never meets a publish midway (functions/migrate/migrator.py).
PUBLISH_LOCK = "company_upsell_signals_publish"

# Metric names the ingest emits; the alarms and the dashboard watch the same names.
SYNC_COMPLETED = "SyncCompleted"
SYNC_FAILED = "SyncFailed"
GUARD_TRIPPED = "GuardTripped"
SYNC_HANDED_OVER = "SyncHandedOver"
SYNC_DURATION = "SyncDuration"
DATES_RECONCILED = "DatesReconciled"  # dates the daily run found changed or never completed, and synced
STATUS_METRICS = {
    "completed": SYNC_COMPLETED,
    "skipped": "SyncSkipped",
    "in_progress": "SyncInProgress",
    "dry_run": "SyncDryRun",
}
ROW_METRICS = {
    "rows_processed": "RowsProcessed",
    "rows_inserted": "RowsInserted",
    "rows_updated": "RowsUpdated",
    "rows_unchanged": "RowsUnchanged",
    "rows_rejected": "RowsRejected",
    "rows_deleted": "RowsDeleted",
}


def object_key_for(prefix: str, sync_date: dt.date) -> str:
    """The S3 key of a date's file: `key_shape` with the date filled in."""
    return f"{prefix}{KEY_DATE_FOLDER}{sync_date.isoformat()}{KEY_SUFFIX}"


def key_shape(prefix: str = "<prefix>") -> str:
    """The keys' shape as people read it: <prefix>dt=YYYY-MM-DD/data.parquet."""
    return f"{prefix}{KEY_DATE_FOLDER}YYYY-MM-DD{KEY_SUFFIX}"


# The ingest's function is named for the sync it runs, not for its service: Lambda enables durable
# execution only when it creates a function (Lambda Developer Guide, "Configure Lambda durable
# functions"), so the durable ingest is a new function under a new name (docs/deploy.md,
# "Switching to durable execution"). Every way in invokes its alias, never $LATEST.
INGEST_FUNCTION_STEM = f"{PROJECT_NAME}-sync"
INGEST_ALIAS = "live"


def function_name(service_name: str, environment_name: str) -> str:
    """A function's fixed name in an environment: what operators pass to `aws lambda invoke --function-name`."""
    return f"{service_name}-{environment_name}"


# -- how long a claim outlives a holder that died without a word ---------------------------
# Lambda runs a failed asynchronous event again about 60 s after the failure, then 120 s after
# the second (Lambda Developer Guide, "How Lambda handles errors and retries with asynchronous
# invocation"); a timeout or an out-of-memory kill is such a failure. A killed holder's lease
# must have lapsed by then, or the retry would find the date held and answer `in_progress`,
# and Lambda, seeing a normal return, would retry no more. So the lease is short and kept
# alive by a heartbeat while its holder lives (functions/ingest/heartbeat.py).
LAMBDA_FIRST_RETRY_SECONDS = 60
CLAIM_LEASE_SECONDS = 30
HEARTBEATS_PER_LEASE = 3  # a live holder renews three times a lease: two missed beats still hold it

# glibc's malloc raises its mmap threshold each time it frees a block above it (up to 32 MB),
# so after the compare's first result page (megabytes), later pages and their copies are carved out
# of per-thread heaps that it seldom hands back: memory crept by about 20 MB over a 10M-row
# compare. A fixed threshold (glibc's own starting value) keeps every block over 128 KiB in a
# mapping of its own, returned when freed. glibc reads it at process start, so the stack sets
# it in the ingest's environment (and bench/ in its workers'). Measured in docs/performance.md.
INGEST_MALLOC_MMAP_THRESHOLD_BYTES = 128 * 1024


# -- a file that needs several runs (functions/ingest/continuation.py) ---------------------
# The ingest runs as a Lambda durable function: each run of an event is a checkpointed step,
# a hand-over is that step's answer (no error, no alarm), and the next run starts after a
# durable wait, which costs no compute (Lambda Developer Guide, "Lambda durable functions").
# The bound: at least a day of work per execution; past it, or when a run makes no progress,
# the event is dead-lettered with the reason.
CONTINUATION_WORK_SECONDS = 24 * 3600
CONTINUATION_PAUSE_SECONDS = 5
# A backstop above the runs' bound (their pauses and their step retries included): Lambda stops
# an execution at its ExecutionTimeout (AWS::Lambda::Function DurableConfig, at most 366 days),
# and the DurableExecutionTimedOut alarm says so.
DURABLE_EXECUTION_TIMEOUT_SECONDS = 3 * 24 * 3600
DURABLE_RETENTION_DAYS = 14  # the execution history an operator can read in the console


def continuation_runs(timeout_seconds: int, margin_seconds: int) -> int:
    """Runs enough for CONTINUATION_WORK_SECONDS of work, each working until the margin before its timeout."""
    return math.ceil(CONTINUATION_WORK_SECONDS / max(1, timeout_seconds - margin_seconds))
