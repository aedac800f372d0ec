"""One contender, one scenario, in its own process: `python -m bench.worker '<spec json>'`.

Run by bench.run with the main venv (this project's sync, the original design and the
floor), under bench/peak_launcher.py, which measures the process's peak RSS from outside.
Each run is a fresh process, so its peak belongs to that scenario alone. Timing covers the
work itself, not interpreter start-up or imports.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import io
import json
import os
import sys
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.protocol import emit, peak_rss_mb

REPO_ROOT = Path(__file__).resolve().parents[1]
TARGET = "company_upsell_signals"
ORIGINAL_BATCH_ROWS = 500


def _invoke_script() -> ModuleType:
    """scripts/invoke as a module: the entry point operators run, with the Lambda handler behind it."""
    loader = importlib.machinery.SourceFileLoader("bench_invoke_script", str(REPO_ROOT / "scripts" / "invoke"))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module  # its dataclasses look their module up while it executes
    loader.exec_module(module)
    return module


def run_sync(spec: dict[str, Any]) -> dict[str, Any]:
    """This project's sync through its real entry point: scripts/invoke's main and the Lambda handler.

    Everything the function loads is loaded (Powertools, boto3, the X-Ray SDK, the handler's
    app), so the peak the parent measures from outside is the function's. The payload is a
    manual replay; the settings come from the environment, as in Lambda. Imports happen
    before the clock starts, as for every contender.
    """
    from bench.steps import StepTimer

    timer = StepTimer()
    if spec.get("step_timing", True):
        timer.install()

    from functions.ingest import insert_statements

    if spec.get("insert_statement_bytes"):  # to measure statement sizes; the product's default otherwise
        insert_statements.DEFAULT_STATEMENT_BYTES = int(spec["insert_statement_bytes"])
    os.environ |= {
        "SIGNALS_BUCKET": spec["bucket"],
        "WORK_DIR": spec["work_dir"],
        "MISSING_ROWS": spec.get("missing_rows", "keep"),
        "STAGING_LOAD_METHOD": spec.get("load_method", "local_infile"),
    }
    invoke = _invoke_script()
    with contextlib.redirect_stdout(sys.stderr):  # as scripts/invoke imports it: Powertools binds its stream
        importlib.import_module("functions.ingest.handler")
    event = Path(spec["work_dir"]) / f"event-{uuid.uuid4()}.json"
    event.write_text(json.dumps({"sync_date": spec["sync_date"], "force_resync": bool(spec.get("force_resync"))}))
    answer = io.StringIO()
    rss_start = peak_rss_mb()
    started = time.perf_counter()
    with contextlib.redirect_stdout(answer):
        exit_code = invoke.main(["ingest", str(event)])
    seconds = time.perf_counter() - started
    event.unlink()
    result = json.loads(answer.getvalue())
    if exit_code != 0 or result.get("status") != "completed":
        raise RuntimeError(f"sync ended with exit {exit_code}: {result}")
    return {
        "seconds": seconds,
        "rows": result["rows_processed"],
        "rss_start_mb": rss_start,
        "counts": {
            name: result.get(f"rows_{name}") for name in ("inserted", "updated", "unchanged", "deleted", "rejected")
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
