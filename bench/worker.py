"""One contender, one scenario, in its own process: `python -m bench.worker '<spec json>'`.

Run by bench.run with the main venv (this project's sync, the original design and the
floor). Each run is a fresh process, so the peak RSS it reports belongs to that scenario
alone. Timing covers the work itself, not interpreter start-up or imports.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.protocol import emit, peak_rss_mb

TARGET = "company_upsell_signals"
ORIGINAL_BATCH_ROWS = 500


def run_sync(spec: dict[str, Any]) -> dict[str, Any]:
    """This project's sync, through the real SyncService, reading from the moto S3 endpoint."""
    import boto3

    from bench.steps import StepTimer

    timer = StepTimer()
    if spec.get("step_timing", True):
        timer.install()

    from functions.ingest import insert_statements
    from functions.ingest.s3_source import SignalObjectStore
    from functions.ingest.service import SyncOptions, SyncService
    from functions.shared.db import connect
    from functions.shared.settings import load_database_settings, load_ingest_settings

    load_method = spec.get("load_method", "local_infile")
    if spec.get("insert_statement_bytes"):  # to measure statement sizes; the product's default otherwise
        insert_statements.DEFAULT_STATEMENT_BYTES = int(spec["insert_statement_bytes"])
    settings = load_ingest_settings(
        {
            "SIGNALS_BUCKET": spec["bucket"],
            "WORK_DIR": spec["work_dir"],
            "MISSING_ROWS": spec.get("missing_rows", "keep"),
            "STAGING_LOAD_METHOD": load_method,
        }
    )
    database = load_database_settings()
    client = boto3.client("s3")  # endpoint, region and credentials from the environment
    service = SyncService(
        settings,
        lambda: connect(database),
        SignalObjectStore(client, spec["bucket"]),
        # As the handler does: LOCAL INFILE only on the staging connection, only for that load method.
        connect_staging=lambda: connect(database, local_infile=load_method == "local_infile"),
    )
    options = SyncOptions(invocation_id=f"bench-{uuid.uuid4()}", trigger="manual", force_resync=bool(spec.get("force_resync")))
    rss_start = peak_rss_mb()
    started = time.perf_counter()
    result = service.sync(dt.date.fromisoformat(spec["sync_date"]), None, options)
    seconds = time.perf_counter() - started
    if result.status != "completed":
        raise RuntimeError(f"sync ended {result.status}: {result.reason}")
    return {
        "seconds": seconds,
        "rows": result.rows_processed,
        "rss_start_mb": rss_start,
        "counts": {
            "inserted": result.rows_inserted,
            "updated": result.rows_updated,
            "unchanged": result.rows_unchanged,
            "deleted": result.rows_deleted,
            "rejected": result.rows_rejected,
        },
        "steps": timer.breakdown(seconds) if spec.get("step_timing", True) else {},
    }


def _target_name(parquet_name: str) -> str:
    lowered = parquet_name.lower()
    return "legacy_company_id" if lowered == "company_id" else lowered


def run_original(spec: dict[str, Any]) -> dict[str, Any]:
    """The original design: batches of 500 rows, executemany INSERT ... ON DUPLICATE KEY UPDATE, commit per batch."""
    import pyarrow.parquet as pq

    from functions.shared.db import connect
    from functions.shared.settings import load_database_settings

    connection = connect(load_database_settings())
    rss_start = peak_rss_mb()
    started = time.perf_counter()
    parquet = pq.ParquetFile(spec["path"])
    columns = [_target_name(name) for name in parquet.schema_arrow.names]
    placeholders = ", ".join(["%s"] * len(columns))
    updates = ", ".join(f"{name} = VALUES({name})" for name in columns if name != "cdms_canonical_company_id")
    sql = (
        f"INSERT INTO {TARGET} ({', '.join(columns)}) VALUES ({placeholders}) "
        f"ON DUPLICATE KEY UPDATE {updates}, updated_at = NOW()"
    )
    affected = rows = 0
    with connection.cursor() as cursor:
        for batch in parquet.iter_batches(batch_size=ORIGINAL_BATCH_ROWS):
            values = list(zip(*(column.to_pylist() for column in batch.columns), strict=True))
            affected += int(cursor.executemany(sql, values) or 0)
            connection.commit()
            rows += batch.num_rows
    seconds = time.perf_counter() - started
    connection.close()
    # MariaDB's affected rows for ON DUPLICATE KEY UPDATE: 1 per insert, 2 per changed update.
    return {"seconds": seconds, "rows": rows, "rss_start_mb": rss_start, "counts": {"affected_rows": affected}}


def run_floor(spec: dict[str, Any]) -> dict[str, Any]:
    """The floor: one LOAD DATA LOCAL INFILE of pre-rendered rows into the empty table."""
    from functions.ingest.columns import COLUMN_NAMES
    from functions.shared.db import connect, offering_local_file
    from functions.shared.settings import load_database_settings

    connection = connect(load_database_settings(), local_infile=True)
    rss_start = peak_rss_mb()
    started = time.perf_counter()
    # The guarded connection sends only a file offered for the statement (functions.shared.db).
    with offering_local_file(connection, Path(spec["path"])), connection.cursor() as cursor:
        loaded = cursor.execute(
            f"LOAD DATA LOCAL INFILE %s INTO TABLE {TARGET} CHARACTER SET utf8mb4 ({', '.join(COLUMN_NAMES)})",
            (spec["path"],),
        )
    connection.commit()
    seconds = time.perf_counter() - started
    connection.close()
    return {"seconds": seconds, "rows": loaded, "rss_start_mb": rss_start, "counts": {"loaded": loaded}}


RUNNERS = {"sync": run_sync, "sync-insert": run_sync, "original": run_original, "floor": run_floor}


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    result = RUNNERS[spec["contender"]](spec)
    result["peak_rss_mb"] = peak_rss_mb()
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
