"""The status function: the operator's report, with capacity of its own.

The ingest's reserved concurrency (2) is full while a backfill runs, so a status request sent to
the ingest waits or is throttled exactly when an operator needs it. This function answers the same
`{"action": "status", ...}` from its own reserved executions, never competing with a sync.
"""

from __future__ import annotations

from aws_cdk import Duration
from constructs import Construct

from functions.shared.contract import STATUS_SERVICE_NAME, function_name
from functions.shared.environment import Env
from infra.constructs.code import FunctionCode
from infra.constructs.database import Database
from infra.constructs.network import Network
from infra.constructs.vpc_function import VpcFunction

STATUS_HANDLER = "functions.status.handler.handler"
# Its own executions: two operators (or an operator and a dashboard script) at once, never more
# connections than that to the database, and never one of the ingest's.
STATUS_RESERVED_CONCURRENCY = 2
# A cold start in the VPC (imports, the secret, TLS) plus a few indexed reads; past this it is stuck.
STATUS_TIMEOUT = Duration.seconds(60)
# CPU scales with memory in Lambda: 512 MB imports Powertools, PyMySQL and boto3 quickly, at the
# price of a few cents a month for a function called by hand.
STATUS_MEMORY_MB = 512


def status_function_name(environment_name: str) -> str:
    """The status function's fixed name, what `scripts/status --function` takes."""
    return function_name(STATUS_SERVICE_NAME, environment_name)


class StatusFunction(Construct):
    """A small VPC function that reads the report with an account of its own; no pyarrow layer, no bucket, no queue.

    `upsell_status` may only SELECT the ledger's tables (migrations/0014_create_status_user), so
    neither the function nor its secret can change a row; its code runs its SELECTs in one
    read-only snapshot besides (functions/status/queries.py).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment_name: str,
        code: FunctionCode,
        network: Network,
        database: Database,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = VpcFunction(
            self,
            "Status",
            function_name=status_function_name(environment_name),
            description="upsell-signals: answer operator status requests (history, one date with its runs and rejects)",
            handler=STATUS_HANDLER,
            code=code,
            network=network,
            database=database,
            database_secret=database.status_secret,
            environment={Env.POWERTOOLS_SERVICE_NAME: STATUS_SERVICE_NAME},
            memory_mb=STATUS_MEMORY_MB,
            timeout=STATUS_TIMEOUT,
            log_retention_days=log_retention_days,
            reserved_concurrency=STATUS_RESERVED_CONCURRENCY,
            # Powertools, PyMySQL and the RDS CA bundle only: no pyarrow to unpack or import.
            layers=[code.deps_layer],
        )
        # Asked synchronously; a stray asynchronous invoke of a read is not worth a retry.
        self.function.function.configure_async_invoke(retry_attempts=0)
