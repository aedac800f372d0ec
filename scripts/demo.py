"""`make demo`: the main job end to end on local stand-ins.

A throwaway MariaDB (started by scripts/with-mariadb), an S3 endpoint from moto on
loopback, a generated Snowflake-like file, the ingest handler invoked as Lambda would,
a summary; then the same request again (skipped), then a corrected re-export with a
new ETag (picked up by itself); last, the operator's status, from the database and
through the function's `{"action": "status"}`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

BUCKET = "demo-signals"
SYNC_DATE = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)  # what the 06:00 schedule would pick
ROWS = 50_000


def show(title: str, invoke: Callable[[], dict[str, Any]]) -> None:
    """Announce a step, run it (its metrics line prints under the title), print its answer."""
    print(f"\n== {title}", flush=True)
    print(json.dumps(invoke(), indent=2))


def main() -> int:
    from tests.stand_ins import moto_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    work_dir = Path(tempfile.mkdtemp(prefix="upsell-demo-"))
    try:
        with moto_server() as endpoint:
            return run_demo(endpoint, work_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def run_demo(s3_endpoint: str, work_dir: Path) -> int:
    import boto3

    os.environ.update(
        AWS_ENDPOINT_URL_S3=s3_endpoint,
        AWS_ACCESS_KEY_ID="demo",
        AWS_SECRET_ACCESS_KEY="demo",
        AWS_DEFAULT_REGION="us-east-1",
        SIGNALS_BUCKET=BUCKET,
        WORK_DIR=str(work_dir),
        POWERTOOLS_LOG_LEVEL=os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
    )
    from functions.ingest import handler as ingest
    from functions.migrate import handler as migrate
    from functions.shared.contract import KEY_PREFIX, object_key_for
    from functions.status.format import format_status
    from tests.factories import day_two, snowflake_table, write_pyarrow
    from tests.scripts_support import LocalContext

    show("1. migrate the throwaway database", lambda: migrate.handler({"action": "up"}, LocalContext("migrate")))

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    key = object_key_for(KEY_PREFIX, SYNC_DATE)
    day_file = write_pyarrow(snowflake_table(ROWS, seed=2026), work_dir / "data.parquet")
    s3.upload_file(str(day_file), BUCKET, key)
    print(f"\nUploaded a Snowflake-like file of {ROWS:,} rows to s3://{BUCKET}/{key}")

    print('(Lines starting {"_aws": ...} are the metrics the function writes, as CloudWatch receives them.)')

    payload = {"sync_date": SYNC_DATE.isoformat()}
    show(f"2. sync {SYNC_DATE} (manual payload {json.dumps(payload)})", lambda: ingest.handler(payload, LocalContext("ingest")))
    show("3. the same request again: skipped, nothing written", lambda: ingest.handler(payload, LocalContext("ingest")))

    corrected = write_pyarrow(day_two(snowflake_table(ROWS, seed=2026), seed=7), work_dir / "corrected.parquet")
    s3.upload_file(str(corrected), BUCKET, key)
    show(
        "4. a corrected re-export lands (new ETag): picked up by itself, only changed rows written",
        lambda: ingest.handler(payload, LocalContext("ingest")),
    )
    show(
        "5. a dry run of the same date with force_resync: counts, nothing published",
        lambda: ingest.handler({**payload, "force_resync": True, "dry_run": True}, LocalContext("ingest")),
    )
    print("\n== 6. what an operator reads at 06:05: ./scripts/status, then ./scripts/status --date", SYNC_DATE)
    sys.stdout.flush()
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "status"), "--days", "3"], check=True)
    print()
    sys.stdout.flush()
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "status"), "--date", SYNC_DATE.isoformat()], check=True)
    status_request = {"action": "status", "days": 3}
    print(f"\n== 7. the same, asked of the function (in AWS: ./scripts/status --function <name>): {json.dumps(status_request)}")
    print(f"  echo '{json.dumps(status_request)}' | ./scripts/invoke ingest -")
    sys.stdout.flush()
    answer = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "invoke"), "ingest", "-"],
        input=json.dumps(status_request),
        capture_output=True,
        text=True,
        check=True,
    )
    print(format_status(json.loads(answer.stdout)))
    print("\nReplay a date by hand:")
    print(f"  echo '{json.dumps({**payload, 'force_resync': True})}' | ./scripts/invoke ingest -")
    return 0


if __name__ == "__main__":
    sys.exit(main())
