"""The environment variables' names, written once: settings.py reads them, the stack (infra/constructs/) sets them.

Pure constants, so infra/ can read them without the runtime's packages.
"""

from __future__ import annotations


class Env:
    """The environment variables the functions read, named once: the stack (infra/constructs/) sets them by these names."""

    AWS_CONNECT_TIMEOUT_SECONDS = "AWS_CONNECT_TIMEOUT_SECONDS"
    AWS_MAX_ATTEMPTS = "AWS_MAX_ATTEMPTS"
    AWS_READ_TIMEOUT_SECONDS = "AWS_READ_TIMEOUT_SECONDS"
    CLAIM_LEASE_SECONDS = "CLAIM_LEASE_SECONDS"
    CONTINUATION_MAX_RUNS = "CONTINUATION_MAX_RUNS"
    DB_CONNECT_TIMEOUT_SECONDS = "DB_CONNECT_TIMEOUT_SECONDS"
    DB_HOST = "DB_HOST"
    DB_IDLE_TIMEOUT_SECONDS = "DB_IDLE_TIMEOUT_SECONDS"
    DB_NAME = "DB_NAME"
    DB_PASSWORD = "DB_PASSWORD"  # noqa: S105 - the variable's name, not a secret
    DB_PORT = "DB_PORT"
    DB_READ_TIMEOUT_SECONDS = "DB_READ_TIMEOUT_SECONDS"
    DB_SECRET_ARN = "DB_SECRET_ARN"  # noqa: S105 - the variable's name, not a secret
    DB_TLS_CA_FILE = "DB_TLS_CA_FILE"
    DB_USER = "DB_USER"
    DB_WRITE_TIMEOUT_SECONDS = "DB_WRITE_TIMEOUT_SECONDS"
    DEAD_LETTER_QUEUE_URL = "DEAD_LETTER_QUEUE_URL"
    ENVIRONMENT_NAME = "ENVIRONMENT_NAME"
    FIRST_LOAD_ROWS_PER_SECOND = "FIRST_LOAD_ROWS_PER_SECOND"
    GUARD_MAX_DELETE_RATIO = "GUARD_MAX_DELETE_RATIO"
    GUARD_MAX_REJECT_RATIO = "GUARD_MAX_REJECT_RATIO"
    GUARD_MAX_ROW_COUNT_DRIFT = "GUARD_MAX_ROW_COUNT_DRIFT"
    INGEST_DB_SECRET_ARN = "INGEST_DB_SECRET_ARN"  # noqa: S105 - the variable's name, not a secret
    MISSING_ROWS = "MISSING_ROWS"
    PUBLISH_LOCK_TIMEOUT_SECONDS = "PUBLISH_LOCK_TIMEOUT_SECONDS"
    PUBLISH_ROWS_PER_SECOND = "PUBLISH_ROWS_PER_SECOND"
    RECONCILE_DAYS = "RECONCILE_DAYS"
    SIGNALS_BUCKET = "SIGNALS_BUCKET"
    SIGNALS_KEY_PREFIX = "SIGNALS_KEY_PREFIX"
    STAGING_CHUNK_ROWS = "STAGING_CHUNK_ROWS"
    STAGING_LOAD_METHOD = "STAGING_LOAD_METHOD"
    STATUS_DB_SECRET_ARN = "STATUS_DB_SECRET_ARN"  # noqa: S105 - the variable's name, not a secret
    TIME_BUDGET_MARGIN_SECONDS = "TIME_BUDGET_MARGIN_SECONDS"
    TRANSIENT_RETRIES = "TRANSIENT_RETRIES"
    TRANSIENT_WAIT_SECONDS = "TRANSIENT_WAIT_SECONDS"
    WORK_DIR = "WORK_DIR"
    # Read by Powertools itself, set by the stack beside ours.
    POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
    POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
    # Read by glibc's malloc when the process starts (functions/shared/contract.py says why).
    MALLOC_MMAP_THRESHOLD = "MALLOC_MMAP_THRESHOLD_"


# What the stack sets on the ingest function in AWS; every other variable keeps its default there.
INGEST_DEPLOYED_VARIABLES = frozenset(
    {
        Env.SIGNALS_BUCKET,
        Env.SIGNALS_KEY_PREFIX,
        Env.DB_SECRET_ARN,
        Env.DB_NAME,
        Env.DB_TLS_CA_FILE,
        Env.STAGING_CHUNK_ROWS,
        Env.STAGING_LOAD_METHOD,
        Env.MISSING_ROWS,
        Env.PUBLISH_ROWS_PER_SECOND,
        Env.GUARD_MAX_REJECT_RATIO,
        Env.GUARD_MAX_ROW_COUNT_DRIFT,
        Env.GUARD_MAX_DELETE_RATIO,
        Env.CLAIM_LEASE_SECONDS,
        Env.CONTINUATION_MAX_RUNS,
        Env.DEAD_LETTER_QUEUE_URL,
        Env.WORK_DIR,
        Env.POWERTOOLS_SERVICE_NAME,
        Env.POWERTOOLS_METRICS_NAMESPACE,
        Env.ENVIRONMENT_NAME,
        Env.MALLOC_MMAP_THRESHOLD,
    }
)
