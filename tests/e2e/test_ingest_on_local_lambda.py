"""The ingest as deployed: the synthesized artifact on the local Lambda, against the real MariaDB and moto on loopback.

The function's settings are the template's (dev): its handler, timeout, memory, environment,
DurableConfig and async retry settings. It is a durable function: each Invoke starts an
execution that the local durable service drives (tests/local_lambda/durable.py). Only what has no local counterpart is given: the bucket, queue and secret
the template refers to (moto's), the moto endpoint, and no RDS CA bundle for a loopback server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from functions.shared.contract import DURABLE_EXECUTION_TIMEOUT_SECONDS, DURABLE_RETENTION_DAYS
from infra.constructs.ingest import INGEST_HANDLER
from tests.e2e.deployed_ingest import INGEST_FUNCTION, INGEST_QUALIFIER, StandIns, file_arrival, ingest_spec
from tests.factories import snowflake_table, write_pyarrow
from tests.local_lambda import DurableFunction, LocalLambda, Template

MINUTE_IS_A_SECOND = 1 / 60


@pytest.fixture
def ingest(template: Template, stand_ins: StandIns, tmp_path: Path) -> Iterator[DurableFunction]:
    """The ingest function as the template defines it, on the local Lambda (a minute of any spacing is a second)."""
    spec = ingest_spec(template, stand_ins)
    with DurableFunction(
        spec, log_path=tmp_path / "ingest.log", sqs_client=stand_ins.sqs, time_scale=MINUTE_IS_A_SECOND, qualifier=INGEST_QUALIFIER
    ) as function:
        yield function


def test_the_template_configures_the_local_ingest(template: Template, ingest: DurableFunction) -> None:
    # Given the dev stack as synthesized; Then the local function runs with its durable handler, limits and retry settings
    spec = ingest.spec
    assert (spec.handler, spec.runtime) == (INGEST_HANDLER, "python3.13")
    assert (spec.durable_execution_timeout_seconds, spec.durable_retention_days) == (
        DURABLE_EXECUTION_TIMEOUT_SECONDS,
        DURABLE_RETENTION_DAYS,
    )
    assert (spec.timeout_seconds, spec.memory_mb) == (900, 2048)
    assert (spec.max_retry_attempts, spec.max_event_age_seconds) == (2, 6 * 3600)
    assert spec.dead_letter_queue_url is not None and spec.on_failure_queue_url is None  # DLQ, not a destination
    assert spec.environment["WORK_DIR"] == "/tmp"
    # And a value the template refers to without a local stand-in stops the run, naming it
    bare = template.function_spec(INGEST_FUNCTION)
    assert {"SIGNALS_BUCKET", "DEAD_LETTER_QUEUE_URL", "DB_SECRET_ARN", "dead-letter queue"} <= set(bare.unresolved)
    with pytest.raises(ValueError, match="no local stand-in"):
        LocalLambda(bare, log_path=Path("/dev/null")).invoke({})


def test_a_file_arrival_is_synced_end_to_end_by_the_deployed_artifact(
    ingest: DurableFunction, stand_ins: StandIns, db: pymysql.Connection[Any], tmp_path: Path
) -> None:
    # Given a day's file in the bucket
    key = "passive_upsell_signals/dt=2026-01-30/data.parquet"
    stand_ins.s3.upload_file(str(write_pyarrow(snowflake_table(2_000, seed=5), tmp_path / "day.parquet")), stand_ins.bucket, key)

    # When EventBridge delivers its "Object Created" event asynchronously
    event = ingest.invoke_async(file_arrival(stand_ins.bucket, key))
    ingest.wait_idle(timeout=180)

    # Then one execution of one invocation, cold, completed the date: every row published, the run recorded
    [result] = event.results
    assert result.outcome == "success", result.payload
    assert result.cold_start
    assert (event.status, event.answer["status"]) == ("SUCCEEDED", "completed"), event.answer
    with db.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM company_upsell_signals")
        assert cursor.fetchone() == (2_000,)
        cursor.execute("SELECT status, rows_processed FROM upsell_signal_sync_metadata WHERE sync_date = '2026-01-30'")
        assert cursor.fetchone() == ("completed", 2_000)
    # And the same event again, a synchronous Invoke on the warm process, is answered as already done
    again = ingest.invoke(file_arrival(stand_ins.bucket, key))
    [warm] = again.results
    assert (warm.outcome, warm.cold_start) == ("success", False)
    assert again.answer["status"] == "skipped", again.answer
    # And nothing reached the dead-letter queue
    assert "Messages" not in stand_ins.sqs.receive_message(QueueUrl=stand_ins.queue_url, WaitTimeSeconds=0)
