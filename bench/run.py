"""`make bench`: this project's sync, the original design, awswrangler and the floor, same run.

    python -m bench.run [--sizes 100000,1000000] [--contenders floor,sync,original,awswrangler]

Needs DB_HOST and friends (scripts/with-mariadb exports them). For each size it generates
seeded files, then runs every contender in its own fresh database, each scenario in its
own subprocess (so the peak RSS is that scenario's), and prints one table per size, the
rows each scenario wrote, where the sync's time goes, the targets and a markdown copy.
Figures are written to bench/results/ as JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.data import SizeFiles, generate
from bench.database import BenchDatabase
from bench.fingerprint import expected_states
from bench.protocol import parse_peak_rss_mb, parse_result
from bench.report import (
    check_targets,
    main_table,
    render_markdown,
    render_text,
    scaling_table,
    steps_table,
    sync_contenders,
    writes_table,
)
from bench.s3 import BUCKET, MotoS3
from bench.scenarios import CONTENDER_LABELS, CONTENDERS, PLANS, SYNC_LOAD_METHODS, Scenario
from bench.wrangler_env import ensure_venv
from functions.shared.contract import INGEST_MALLOC_MMAP_THRESHOLD_BYTES, KEY_PREFIX, object_key_for
from functions.shared.environment import Env
from functions.shared.settings import DatabaseSettings, load_database_settings

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "bench" / "results"
BUILD_DIR = REPO_ROOT / "build"
PEAK_LAUNCHER = REPO_ROOT / "bench" / "peak_launcher.py"
WORKER_TIMEOUT_SECONDS = 3600
RETRY_DATE_OFFSET_DAYS = 1  # scenario dates are two days apart (bench.scenarios)
NOISE_NOTE = (
    "2-core machine shared with other work (e.g. a concurrent test suite): figures carry that noise; "
    "compare contenders within one run, not across runs."
)


class WorkerFailed(RuntimeError):
    pass


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated row counts (default: 100000,1000000)")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help=f"subset of {','.join(CONTENDERS)}")
    parser.add_argument("--wrangler-chunksize", type=int, default=1000, help="rows per INSERT for awswrangler (default 1000)")
    parser.add_argument(
        "--insert-statement-bytes",
        type=int,
        default=None,
        help="INSERT statement size for sync-insert (default: the product's, insert_statements.DEFAULT_STATEMENT_BYTES)",
    )
    parser.add_argument(
        "--scenarios",
        default=None,
        help="subset of each contender's scenarios, by key (first_load,resync,day_two_a,...); first_load is always run",
    )
    parser.add_argument("--no-step-timing", action="store_true", help="do not time the sync's steps")
    parser.add_argument("--keep-data", action="store_true", help="keep the generated files (path printed)")
    args = parser.parse_args(argv)
    args.size_list = [int(size.replace("_", "")) for size in args.sizes.split(",") if size.strip()]
    args.contender_list = [name.strip() for name in args.contenders.split(",") if name.strip()]
    args.scenario_keys = None if args.scenarios is None else {"first_load", *(k.strip() for k in args.scenarios.split(","))}
    unknown = set(args.contender_list) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contender(s): {', '.join(sorted(unknown))}")
    return args


def run_worker(command: list[str], spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """Run one worker under the peak launcher; its result, with the peak RSS measured from outside."""
    completed = subprocess.run(
        [sys.executable, "-S", str(PEAK_LAUNCHER), *command, json.dumps(spec)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT_SECONDS,
        check=False,
    )
    result = parse_result(completed.stdout)
    if completed.returncode != 0 or result is None:
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-12:]
        raise WorkerFailed(f"exit {completed.returncode}: " + "\n    ".join(tail))
    # From outside (wait4's ru_maxrss): what Lambda would count. The worker's own VmHWM is kept to compare.
    result["peak_rss_inside_mb"] = result.pop("peak_rss_mb", None)
    result["peak_rss_mb"] = parse_peak_rss_mb(completed.stdout)
    return result


class Bench:
    def __init__(self, args: argparse.Namespace, server: DatabaseSettings, s3: MotoS3) -> None:
        self.args = args
        self.server = server
        self.s3 = s3
        self.wrangler_python: Path | None = None
        self.wrangler_error: str | None = None
        # Outside build/ on purpose: `make clean` or a layer build elsewhere may empty build/ mid-run.
        self.scratch = Path(tempfile.mkdtemp(prefix="upsell-bench-"))
        self.work_dir = self.scratch / "work"
        self.expected: dict[str, tuple[int, int]] = {}  # scenario key -> (rows, checksum) the table must hold

    def prepare_wrangler(self) -> None:
        """Build (or check) build/bench-venv; checked again before each size, as build/ may be emptied meanwhile."""
        if "awswrangler" not in self.args.contender_list:
            return
        self.wrangler_python, self.wrangler_error = ensure_venv(BUILD_DIR / "bench-venv")
        if self.wrangler_error:
            print(f"bench: awswrangler unavailable, continuing without it: {self.wrangler_error}", flush=True)

    def cleanup(self) -> None:
        if self.args.keep_data:
            print(f"bench: generated files kept in {self.scratch}", flush=True)
        else:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def command_and_spec(
        self, contender: str, scenario: Scenario, files: SizeFiles, database: BenchDatabase
    ) -> tuple[list[str], dict[str, Any]]:
        path = getattr(files, scenario.file)
        if contender == "awswrangler":
            assert self.wrangler_python is not None
            db = self.server
            spec: dict[str, Any] = {
                "path": str(path),
                "chunksize": self.args.wrangler_chunksize,
                "database": {
                    "host": db.host,
                    "port": db.port,
                    "user": db.user,
                    "password": db.password or "",
                    "name": database.name,
                },
            }
            return [str(self.wrangler_python), str(REPO_ROOT / "bench" / "wrangler_worker.py")], spec
        spec = {"contender": contender}
        if contender in SYNC_LOAD_METHODS:
            spec |= {
                "load_method": SYNC_LOAD_METHODS[contender],
                "insert_statement_bytes": self.args.insert_statement_bytes,
                "bucket": BUCKET,
                "work_dir": str(self.work_dir),
                "sync_date": scenario.sync_date.isoformat(),
                "force_resync": scenario.force_resync,
                "missing_rows": scenario.missing_rows,
                "step_timing": not self.args.no_step_timing,
            }
        elif contender == "floor":
            spec["path"] = str(files.floor_load_file)
        else:
            spec["path"] = str(path)
        return [sys.executable, "-m", "bench.worker"], spec

    def run_contender(self, contender: str, files: SizeFiles) -> dict[str, Any]:
        entry: dict[str, Any] = {"error": None, "scenarios": {}}
        if contender == "awswrangler":
            self.prepare_wrangler()
            if self.wrangler_error:
                entry["error"] = self.wrangler_error
                return entry
        database = BenchDatabase(self.server, f"bench_{contender}_{files.rows}")
        database.create()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, DB_NAME=database.name, **self.s3.environment)
        if contender in SYNC_LOAD_METHODS:  # the process environment the stack gives the deployed function
            env[Env.MALLOC_MMAP_THRESHOLD] = str(INGEST_MALLOC_MMAP_THRESHOLD_BYTES)
        try:
            for planned in PLANS[contender]:
                if self.args.scenario_keys is not None and planned.key not in self.args.scenario_keys:
                    continue
                figures, failures = self.run_scenario(contender, planned, files, database, env)
                if figures is None and planned.key == "first_load":
                    entry["error"] = "first load failed"
                entry["scenarios"][planned.key] = figures or {"error": "failed twice", "failures": failures}
                if figures is None:
                    if planned.key == "first_load":
                        break
                    continue
                counts = figures.get("counts") or {}
                shown = ", ".join(f"{name} {value:,}" for name, value in counts.items() if value is not None)
                equal = "table = file" if figures["table_equals_file"] else "TABLE != FILE"
                print(
                    f"  {CONTENDER_LABELS[contender]:<18} {planned.label:<48} {figures['seconds']:7.1f} s "
                    f"{figures['peak_rss_mb']:6.0f} MB  touched {figures['rows_touched']:,}  [{shown}]  {equal}",
                    flush=True,
                )
                if planned.key == "first_load" and len(PLANS[contender]) > 1:
                    database.snapshot()
        finally:
            database.drop()
        return entry

    def run_scenario(
        self, contender: str, planned: Scenario, files: SizeFiles, database: BenchDatabase, env: dict[str, str]
    ) -> tuple[dict[str, Any] | None, list[str]]:
        """Run one scenario; on a failure, once more from the same starting state (reported).

        A retry of the sync uses a date of its own, so it stages afresh instead of
        resuming the failed attempt's staged rows (which would flatter it).
        """
        failures: list[str] = []
        for attempt in (1, 2):
            scenario = planned
            if attempt == 2:
                if planned.key == "first_load":
                    database.create()
                else:
                    database.restore()  # day-two shapes start from day one; the re-sync's table is day one too
                    if contender in SYNC_LOAD_METHODS:
                        scenario = replace(planned, sync_date=planned.sync_date + dt.timedelta(days=RETRY_DATE_OFFSET_DAYS))
                        self.s3.upload(getattr(files, scenario.file), object_key_for(KEY_PREFIX, scenario.sync_date))
            elif planned.restore_day_one:
                database.restore()
            settled_seconds = database.settle()  # untimed: earlier writes are not this scenario's cost
            since = database.now()
            time.sleep(1.0)  # rows this scenario writes get updated_at > since
            command, spec = self.command_and_spec(contender, scenario, files, database)
            counters_before = database.server_counters()
            try:
                figures = run_worker(command, spec, env)
            except (WorkerFailed, subprocess.TimeoutExpired, OSError) as error:
                failures.append(str(error))
                last_line = str(error).strip().splitlines()[-1]
                label = f"{CONTENDER_LABELS[contender]:<16} {planned.label:<48}"
                print(f"  {label} FAILED (attempt {attempt}): {last_line}", flush=True)
                continue
            database.settle()  # untimed: the pages this scenario dirtied are written now, and counted as its own
            counters_after = database.server_counters()
            figures["server_io"] = {name: counters_after[name] - counters_before.get(name, 0) for name in counters_after}
            figures |= database.table_state(since)
            figures |= database.sizes_mb()
            # Untimed: the table must equal what the files say, exactly (count and row checksums).
            figures["table_equals_file"] = database.checksum() == self.expected[planned.key]
            figures["settled_before_s"] = round(settled_seconds, 1)
            if failures:
                figures["retried_after"] = failures
            return figures, failures
        return None, failures

    def run_size(self, rows: int) -> dict[str, Any]:
        data_dir = self.scratch / "data" / str(rows)
        print(f"\n== {rows:,} rows: generating files ...", flush=True)
        started = time.perf_counter()
        files = generate(rows, data_dir)
        self.expected = expected_states(files.day_one, files.day_two_a, files.day_two_b)
        keys = {}
        for scenario in PLANS["sync"]:
            key = object_key_for(KEY_PREFIX, scenario.sync_date)
            self.s3.upload(getattr(files, scenario.file), key)
            keys[scenario.key] = key
        file_rows = {name: files.rows_of(getattr(files, name)) for name in ("day_one", "day_two_a", "day_two_b")}
        sizes_mb = {name: round(getattr(files, name).stat().st_size / 2**20, 1) for name in ("day_one", "day_two_a", "day_two_b")}
        print(f"   files ready in {time.perf_counter() - started:.1f} s: rows {file_rows}, MB {sizes_mb}", flush=True)
        results: dict[str, Any] = {"rows": rows, "file_rows": file_rows, "file_mb": sizes_mb, "contenders": {}}
        for contender in self.args.contender_list:  # in the order given
            results["contenders"][contender] = self.run_contender(contender, files)
        for key in set(keys.values()):
            self.s3.delete(key)
        if not self.args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
        return results


def print_size(results: dict[str, Any]) -> None:
    rows = results["rows"]
    for sync in sync_contenders(results) or ["sync"]:
        method = SYNC_LOAD_METHODS[sync]
        print(f"\n### {rows:,} rows, STAGING_LOAD_METHOD={method} (day-two files: {results['file_rows']['day_two_a']:,} rows)\n")
        print(render_text(*main_table(results, sync)))
        print("\nRows written (touched = rows whose updated_at moved; next id = the table's AUTO_INCREMENT afterwards):\n")
        print(render_text(*writes_table(results, sync)))
        header, step_rows = steps_table(results, sync)
        if len(header) > 1:
            print(f"\nWhere this sync's time goes with {method} (seconds, measured inside the worker):\n")
            print(render_text(header, step_rows))
    for contender, entry in results["contenders"].items():
        if entry.get("error"):
            print(f"\n{CONTENDER_LABELS[contender]}: {entry['error']}")
        for key, figures in (entry.get("scenarios") or {}).items():
            for failure in figures.get("retried_after") or figures.get("failures") or []:
                outcome = "failed, then retried" if "seconds" in figures else "failed"
                print(f"\n{CONTENDER_LABELS[contender]} {key} {outcome}: {failure.strip().splitlines()[-1]}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    server = load_database_settings()
    started_at = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()
    meta: dict[str, Any] = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "noise": NOISE_NOTE,
        "sizes": args.size_list,
        "wrangler_chunksize": args.wrangler_chunksize,
        "notes": [
            "this sync: real SyncService, file fetched from a moto S3 server on loopback, default settings "
            "(STAGING_CHUNK_ROWS=25000, STAGING_LOAD_METHOD=local_infile); this sync (insert): the same with "
            "STAGING_LOAD_METHOD=insert and no LOCAL INFILE on any connection",
            "original design and awswrangler read the Parquet file from local disk (no S3)",
            "floor: LOAD DATA LOCAL INFILE of pre-rendered rows into the empty table; first load only",
            "day two (b) and the delete run start from the day-one table, restored untimed",
            "peak RSS: the scenario's own process measured from outside (bench/peak_launcher.py, wait4's ru_maxrss), "
            "imports included; the sync runs through scripts/invoke and the Lambda handler",
        ],
    }
    with MotoS3() as s3:
        bench = Bench(args, server, s3)
        try:
            meta["mariadb"] = BenchDatabase(server, server.name).server_version()
            print(
                f"bench: MariaDB {meta['mariadb']}, {meta['cpus']} CPUs, load average {load_before[0]:.2f}; {NOISE_NOTE}",
                flush=True,
            )
            bench.prepare_wrangler()
            meta["awswrangler"] = bench.wrangler_error or "build/bench-venv (bench/requirements-awswrangler.txt)"
            results_by_size: dict[int, dict[str, Any]] = {}
            for rows in args.size_list:
                results_by_size[rows] = bench.run_size(rows)
                print_size(results_by_size[rows])
        finally:
            bench.cleanup()
    meta["load_average_after"] = os.getloadavg()
    meta["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

    print("\n" + "=" * 100)
    for rows in args.size_list:
        print_size(results_by_size[rows])
    scaling = scaling_table(results_by_size)
    if scaling:
        print(f"\nScaling from 1,000,000 to {max(results_by_size):,} rows (time and peak RSS):\n")
        print(render_text(*scaling))
    checked_size, checks = check_targets(results_by_size)
    print(f"\nTargets (speed set for 1,000,000 rows, checked at {checked_size:,}; memory per load method):\n")
    for check in checks:
        print(f"  {check.verdict:<4}  {check.target}: {check.figure}")
    print(f"\nNotes: {NOISE_NOTE} Load average before {load_before[0]:.2f}, after {meta['load_average_after'][0]:.2f}.")
    for note in meta["notes"]:
        print(f"  - {note}")

    print("\nMarkdown for the README:\n")
    for rows in args.size_list:
        for sync in sync_contenders(results_by_size[rows]) or ["sync"]:
            print(f"**{rows:,} rows, STAGING_LOAD_METHOD={SYNC_LOAD_METHODS[sync]}**\n")
            print(render_markdown(*main_table(results_by_size[rows], sync)))
            print()
            print(render_markdown(*writes_table(results_by_size[rows], sync)))
            print()
    if scaling:
        print(render_markdown(*scaling))
        print()
    print("| target | figure | result |\n|---|---|---|")
    for check in checks:
        print(f"| {check.target} | {check.figure} | {check.verdict} |")

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    document = {
        "meta": meta,
        "sizes": {str(rows): figures for rows, figures in results_by_size.items()},
        "targets": {
            "checked_at_rows": checked_size,
            "checks": [{"target": c.target, "figure": c.figure, "verdict": c.verdict} for c in checks],
        },
    }
    stamp = started_at.strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"bench-{stamp}.json"
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    (RESULTS_DIR / "latest.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"\nFigures written to {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
