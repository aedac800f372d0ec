"""The awswrangler contender, run by build/bench-venv/bin/python (awswrangler needs pyarrow<26).

Standalone on purpose: it imports nothing from functions/ or bench/, only what that venv
holds. Usage: wrangler_worker.py '<spec json>'; prints one BENCH_RESULT line like bench.worker.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any

RESULT_PREFIX = "BENCH_RESULT "
TARGET = "company_upsell_signals"


def peak_rss_mb() -> float:
    """Peak RSS in MB: VmHWM, as bench.protocol.peak_rss_mb (ru_maxrss survives fork and exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(spec: dict[str, Any]) -> dict[str, Any]:
    import awswrangler as wr
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pymysql

    database = spec["database"]
    connection = pymysql.connect(
        host=database["host"],
        port=int(database["port"]),
        user=database["user"],
        password=database["password"],
        database=database["name"],
        charset="utf8mb4",
        autocommit=False,
        init_command="SET time_zone = '+00:00'",
    )
    rss_start = peak_rss_mb()
    started = time.perf_counter()
    table = pq.read_table(spec["path"])
    names = ["legacy_company_id" if name.lower() == "company_id" else name.lower() for name in table.column_names]
    columns = [column.cast(pa.int64()) if pa.types.is_decimal(column.type) else column for column in table.columns]
    table = pa.table(dict(zip(names, columns, strict=True)))
    frame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    del table, columns
    wr.mysql.to_sql(
        frame,
        connection,
        table=TARGET,
        schema=database["name"],
        mode="upsert_duplicate_key",
        use_column_names=True,
        chunksize=int(spec["chunksize"]),
    )
    seconds = time.perf_counter() - started
    rows = len(frame.index)
    connection.close()
    return {
        "seconds": seconds,
        "rows": rows,
        "rss_start_mb": rss_start,
        "counts": {},
        "versions": {"awswrangler": wr.__version__, "pandas": pd.__version__, "pyarrow": pa.__version__},
    }


def main(argv: list[str]) -> int:
    result = run(json.loads(argv[0]))
    result["peak_rss_mb"] = peak_rss_mb()
    sys.stdout.write(RESULT_PREFIX + json.dumps(result, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
