"""A model-based month: random histories through the real handler, checked after every step against a model.

The model is computed from the files alone (which rows are valid is known by how the
generator built them; counts, guards and the newest-file rule follow the spec), never
from the code under test. `make test` runs a short history; `make soak` a long one:

    make soak                                      # 30+ days, 200+ steps, a random seed
    MODEL_SEED=1234 make soak                      # replay one history exactly
    MODEL_SEED=1234 MODEL_DAYS=8 MODEL_STEPS=30 make soak

Every assertion message carries the seed and the step, so a failing history is one
command away, and a failure prints the history's whole step log. However short, a history
holds at least one kill, delete-mode day, dry run, correction, duplicated event, dropped
event, 06:00 run and date synced by the 06:00 run's reconcile (steps are topped up at its end
if chance left one out), and the ledger's counts are checked with its status and ETag.

The 06:00 run (`schedule`) is the scheduled event as EventBridge Scheduler sends it, for a day
of the history: it syncs the day before its `time` (failed, "no file at s3://...", and
dead-lettered when that date has no file yet), then the RECONCILE_DAYS (7) dates before it,
each whose file never completed, changed since it completed, or failed on another object;
a date that failed on the very object it has is left to its dead letter. Events are dropped
at random (Lambda may drop or age one out), which is what the reconcile is there for.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.compute as pc
import pymysql
import pytest

from functions.ingest import handler as ingest
from functions.shared.contract import object_key_for
from functions.shared.errors import PermanentError
from functions.shared.settings import DatabaseSettings
from tests.factories import TIERS, snowflake_table, write_pyarrow
from tests.integration.conftest import BUCKET, PREFIX, chunks_committed, expected_rows, invoke_in_a_process, query, table_rows
from tests.lambda_timing import FIRST_RETRY_SECONDS, LEASE_SECONDS
from tests.scripts_support import LocalContext

FIRST_DAY = dt.date(2026, 3, 1)
ROWS_ON_DAY_ONE = 300
BAD_PRODUCT = "x" * 40  # longer than core_product's 16 characters: the row is rejected
GUARDS = {"reject_ratio": 0.05, "row_count_drift": 0.30, "delete_ratio": 0.10}
S3_NOTIFICATION = Path(__file__).resolve().parents[2] / "events" / "s3-notification.json"
# What every history, however short, must hold at least once: topped up at its end if chance left one out.
COVERAGE = (
    "kill",
    "delete_mode_day",
    "dry_run",
    "correction",
    "duplicated_event",
    "dropped_event",
    "schedule",
    "reconciled",
)
SCHEDULE = Path(__file__).resolve().parents[2] / "events" / "schedule.json"
RECONCILE_DAYS = 7  # the default, which the environment leaves
DROPPED = 0.15  # the share of arrivals' and corrections' events that Lambda drops


def setting(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


# -- the generator: each day's file from the day before, its bad rows known by construction ----------


@dataclass
class Export:
    """One file uploaded for a date."""

    table: pa.Table
    etag: str

    @property
    def keys(self) -> list[str]:
        return [str(key) for key in self.table["CDMS_CANONICAL_COMPANY_ID"].to_pylist()]

    def valid_rows(self) -> pa.Table:
        """Rows the spec says load: a core product that fits, a key that appears once."""
        counts: dict[str, int] = {}
        for key in self.keys:
            counts[key] = counts.get(key, 0) + 1
        fits = pc.less_equal(pc.utf8_length(pc.fill_null(self.table["CORE_PRODUCT"], "")), 16)
        once = pa.array([counts[key] == 1 for key in self.keys])
        return self.table.filter(pc.and_(fits, once))

    @property
    def rejected_keys(self) -> set[str]:
        """Companies the file carries only as rejected rows."""
        return set(self.keys) - set(self.valid_rows()["CDMS_CANONICAL_COMPANY_ID"].to_pylist())


class Generator:
    """Seeded files: 10% of rows changed, 2% new, 2% gone, about 1% bad, sometimes a repeated key."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.next_id = 1

    def first(self) -> pa.Table:
        table = snowflake_table(ROWS_ON_DAY_ONE, seed=self.rng.randrange(1 << 30), first_id=self.next_id)
        self.next_id += ROWS_ON_DAY_ONE
        return self._spoil(table)

    def next(self, previous: pa.Table) -> pa.Table:
        table = self._mend(previous)
        rows = table.num_rows
        keep = pa.array([self.rng.random() >= 0.02 for _ in range(rows)])
        change = [self.rng.random() < 0.10 for _ in range(rows)]
        tiers = [
            self.rng.choice(TIERS.to_pylist()) if changed else tier
            for changed, tier in zip(change, table["CURRENT_PRODUCT_TIER"].to_pylist(), strict=True)
        ]
        paid = [
            self.rng.randrange(5000) if changed else count
            for changed, count in zip(change, table["MOST_RECENT_PAID_EE_COUNT"].to_pylist(), strict=True)
        ]
        table = self._set(table, "CURRENT_PRODUCT_TIER", tiers)
        table = self._set(table, "MOST_RECENT_PAID_EE_COUNT", paid).filter(keep)
        additions = max(1, int(rows * 0.02))
        new_rows = snowflake_table(additions, seed=self.rng.randrange(1 << 30), first_id=self.next_id)
        self.next_id += additions
        return self._spoil(pa.concat_tables([table, new_rows.cast(table.schema)]))

    def correction(self, table: pa.Table) -> pa.Table:
        """A re-export of the same day: a few values differ."""
        tiers = [
            self.rng.choice(TIERS.to_pylist()) if self.rng.random() < 0.05 else tier
            for tier in table["CURRENT_PRODUCT_TIER"].to_pylist()
        ]
        return self._set(table, "CURRENT_PRODUCT_TIER", tiers)

    def _spoil(self, table: pa.Table) -> pa.Table:
        products = table["CORE_PRODUCT"].to_pylist()
        for row in self.rng.sample(range(table.num_rows), max(1, table.num_rows // 100)):
            products[row] = BAD_PRODUCT
        table = self._set(table, "CORE_PRODUCT", products)
        if self.rng.random() < 0.3:  # one company's key written over another's: both copies rejected
            keys = table["CDMS_CANONICAL_COMPANY_ID"].to_pylist()
            source, target = self.rng.sample(range(table.num_rows), 2)
            keys[target] = keys[source]
            table = self._set(table, "CDMS_CANONICAL_COMPANY_ID", keys)
        return table

    def _mend(self, table: pa.Table) -> pa.Table:
        """Yesterday's bad values fixed and repeated keys dropped, so that bad rows do not pile up."""
        products = [product if product != BAD_PRODUCT else "payroll" for product in table["CORE_PRODUCT"].to_pylist()]
        seen: set[str] = set()
        first_copy = []
        for key in table["CDMS_CANONICAL_COMPANY_ID"].to_pylist():
            first_copy.append(key not in seen)
            seen.add(key)
        return self._set(table, "CORE_PRODUCT", products).filter(pa.array(first_copy))

    @staticmethod
    def _set(table: pa.Table, name: str, values: list[Any]) -> pa.Table:
        index = table.schema.get_field_index(name)
        return table.set_column(index, table.schema.field(index), pa.array(values, table.schema.field(index).type))


COUNTS = ("rows_processed", "rows_rejected", "rows_inserted", "rows_updated", "rows_unchanged", "rows_deleted", "rows_superseded")


# -- the model: what the spec says the table and the ledger must be ---------------------------------


@dataclass
class DateState:
    status: str | None = None  # completed | failed | None (never attempted, or only dry runs)
    completed_etag: str | None = None  # set once the date published; a later failure leaves it (and its rows)
    rows_loaded: int = 0  # of its last completed sync, for row_count_drift
    counts: dict[str, int] = field(default_factory=dict)  # of its last completed sync, as the ledger must hold them
    # The object an arrival (or the 06:00 run) last failed on by a guard: its repeated arrival is skipped, left to its dead letter.
    failed_for_good_on: str | None = None
    # The object its latest claim failed on, whoever met the failure (None: no file), as the ledger holds it.
    failed_on: str | None = None


@dataclass
class Model:
    table: dict[str, dict[str, Any]] = field(default_factory=dict)
    dates: dict[dt.date, DateState] = field(default_factory=dict)

    def newest_completed(self) -> dt.date | None:
        done = [date for date, state in self.dates.items() if state.completed_etag is not None]
        return max(done) if done else None

    def to_reconcile(self, sync_date: dt.date, export: Export) -> bool:
        """Whether the 06:00 run's reconcile syncs this date, whose file is `export`: it never completed,
        changed since it completed, or failed otherwise than for good on this object (every failure here
        is permanent; one only a person's replay met holds back no arrival, so no reconcile either)."""
        state = self.dates.get(sync_date)
        if state is None or state.status is None:
            return True
        if state.status == "completed":
            return state.completed_etag != export.etag
        return state.failed_for_good_on != export.etag

    def previous_loaded(self, sync_date: dt.date) -> int | None:
        done = [date for date, state in self.dates.items() if state.status == "completed" and date < sync_date]
        return self.dates[max(done)].rows_loaded if done else None

    def outcome(
        self,
        sync_date: dt.date,
        export: Export,
        *,
        force: bool,
        delete: bool,
        manual: bool,
        newer_exports: dict[dt.date, Export],
        overrides: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """What one sync of `export` must answer (and, unless skipped or failed, do to the table).

        The newest file wins per company: what the files of newer published dates carry is
        left to them; in delete mode a newer file also decides the companies it lacks, so an
        older date writes or deletes only those every newer file rejected. A newer date whose
        file in S3 is no longer the one it published carries, for all the older date can
        tell, every company the table has (keep mode) or everything (delete mode).
        """
        state = self.dates.setdefault(sync_date, DateState())
        if state.status == "completed" and state.completed_etag == export.etag and not force:
            return {"status": "skipped"}
        if state.status == "failed" and state.failed_for_good_on == export.etag and not (force or manual):
            return {"status": "skipped"}  # an arrival or the 06:00 run again: the reconcile never asks (to_reconcile)
        valid = expected_rows(export.valid_rows())
        processed, loaded = export.table.num_rows, len(valid)
        newer = [date for date, later in self.dates.items() if later.completed_etag is not None and date > sync_date]
        changes = {key for key, row in valid.items() if self.table.get(key) != row}
        known = [date for date in newer if newer_exports[date].etag == self.dates[date].completed_etag]
        unknown = len(known) < len(newer)
        left_to_this_date = set()
        if newer and not unknown:
            left_to_this_date = set.intersection(*(newer_exports[date].rejected_keys for date in newer))
        if newer and delete:
            superseded = changes - left_to_this_date
        elif newer:
            carried = {key for date in known for key in expected_rows(newer_exports[date].valid_rows())}
            superseded = changes & (carried | set(self.table)) if unknown else changes & carried
        else:
            superseded = set()
        writes = {key: row for key, row in valid.items() if key not in superseded}
        file_keys = set(export.keys)
        absent = [key for key in self.table if key not in file_keys] if delete else []
        to_delete = [key for key in absent if key in left_to_this_date] if newer else absent
        tripped = []
        if processed == 0:
            tripped.append("empty_file")
        elif (processed - loaded) / processed > GUARDS["reject_ratio"]:
            tripped.append("reject_ratio")
        previous = self.previous_loaded(sync_date)
        if previous and abs(loaded - previous) / previous > GUARDS["row_count_drift"]:
            tripped.append("row_count_drift")
        if delete and self.table and len(to_delete) / len(self.table) > GUARDS["delete_ratio"]:
            tripped.append("delete_ratio")
        newest = self.newest_completed()
        if manual and newest and sync_date < newest:
            tripped.append("stale_date")
        tripped = [guard for guard in tripped if guard not in overrides]
        inserted = sum(1 for key in writes if key not in self.table)
        updated = sum(1 for key, row in writes.items() if key in self.table and self.table[key] != row)
        return {
            "status": "failed" if tripped else "completed",
            "manual": manual,
            "guards": tripped,
            "valid": writes,
            "to_delete": to_delete,
            "rows_processed": processed,
            "rows_rejected": processed - loaded,
            "rows_inserted": inserted,
            "rows_updated": updated,
            "rows_unchanged": loaded - inserted - updated - len(superseded),
            "rows_superseded": len(superseded),
            "rows_deleted": len(to_delete),
        }

    def apply(self, sync_date: dt.date, export: Export, expected: dict[str, Any]) -> None:
        state = self.dates[sync_date]
        if expected["status"] == "failed":
            # Met by anything but a person's replay (an arrival, the 06:00 run or its reconcile), it holds back arrivals.
            state.status, state.failed_on = "failed", export.etag
            state.failed_for_good_on = None if expected["manual"] else export.etag
        elif expected["status"] == "completed":
            for key in expected["to_delete"]:
                del self.table[key]
            self.table.update(expected["valid"])
            # Every valid row counts as loaded, the ones left to newer dates included (the ledger's rows_processed - rows_rejected).
            loaded = expected["rows_processed"] - expected["rows_rejected"]
            state.status, state.completed_etag, state.rows_loaded = "completed", export.etag, loaded
            state.counts = {count: expected[count] for count in COUNTS}

    def no_file(self, sync_date: dt.date) -> None:
        """The 06:00 run met no file for its date: failed on no object, which holds back no file's arrival."""
        state = self.dates.setdefault(sync_date, DateState())
        state.status, state.failed_on, state.failed_for_good_on = "failed", None, None


# -- the driver: events as AWS sends them, through the real handler ---------------------------------------


def scheduled_event(day: dt.date) -> dict[str, Any]:
    """The sample scheduled event (events/), its `time` the morning after `day` at 06:00 UTC."""
    event: dict[str, Any] = json.loads(SCHEDULE.read_text())
    event["time"] = f"{day + dt.timedelta(days=1):%Y-%m-%d}T06:00:00Z"
    return event


def s3_notification(sync_date: dt.date, export: Export) -> dict[str, Any]:
    """The sample S3 notification (events/), for this date's key (URL-encoded, as S3 sends it) and object."""
    event: dict[str, Any] = json.loads(S3_NOTIFICATION.read_text())
    record = event["Records"][0]
    record["s3"]["bucket"] = {"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"}
    record["s3"]["object"].update(
        key=object_key_for(PREFIX, sync_date).replace("=", "%3D"), eTag=export.etag, size=export.table.nbytes
    )
    return event


class History:
    """Random steps against the real handler, each checked against the model."""

    def __init__(self, seed: int, endpoint: str, settings: DatabaseSettings, db: Any, work_dir: Path) -> None:
        self.seed, self.rng = seed, random.Random(seed)
        self.endpoint, self.settings, self.db, self.work_dir = endpoint, settings, db, work_dir
        self.s3 = boto3.client("s3", endpoint_url=endpoint)
        self.sqs = boto3.client("sqs", endpoint_url=endpoint)
        self.queue_url = os.environ["DEAD_LETTER_QUEUE_URL"]
        self.generator = Generator(self.rng)
        self.model = Model()
        self.exports: dict[dt.date, Export] = {}
        self.delete_mode = False
        self.step = 0
        self.log: list[str] = []
        self.covered = dict.fromkeys(COVERAGE, 0)

    def where(self) -> str:
        return f"seed {self.seed}, step {self.step}: {'; '.join(self.log[-6:])}"

    def history(self) -> str:
        """The whole step log, one step a line, to read a failing seed's history in full."""
        lines = "\n".join(f"  {number:4d}. {what}" for number, what in enumerate(self.log, 1))
        return f"model history, seed {self.seed} ({len(self.log)} steps):\n{lines}"

    # the steps ---------------------------------------------------------------------------------

    def arrive(self) -> None:
        sync_date = FIRST_DAY + dt.timedelta(days=len(self.exports))
        latest = self.exports.get(sync_date - dt.timedelta(days=1))
        table = self.generator.next(latest.table) if latest else self.generator.first()
        self._upload(sync_date, table)
        if self.rng.random() < DROPPED:
            self._drop(f"arrival of {sync_date}")
        else:
            self._deliver(sync_date, f"arrival of {sync_date}")
        if self.rng.random() < 0.3:
            self.duplicate()

    def duplicate(self) -> None:
        """The newest date's event delivered again (S3 and EventBridge deliver at least once)."""
        sync_date = max(self.exports)
        self.covered["duplicated_event"] += 1
        self._deliver(sync_date, f"duplicated delivery of {sync_date}")

    def correct(self, sync_date: dt.date | None = None, *, dropped: bool | None = None) -> None:
        sync_date = sync_date or self._some_date(recent=True)
        self._upload(sync_date, self.generator.correction(self.exports[sync_date].table))
        self.covered["correction"] += 1
        if dropped if dropped is not None else self.rng.random() < DROPPED:
            self._drop(f"correction of {sync_date}")
        else:
            self._deliver(sync_date, f"correction of {sync_date}")

    def _drop(self, what: str) -> None:
        """The file is in S3, but Lambda dropped its event: nothing runs (until a later event or the 06:00 run)."""
        self.log.append(f"{what}: its event dropped")
        self.covered["dropped_event"] += 1

    def redeliver(self) -> None:
        sync_date = self._some_date(recent=False)
        self.covered["duplicated_event"] += 1
        self._deliver(sync_date, f"late or repeated event of {sync_date}")

    def replay(self) -> None:
        sync_date = self._some_date(recent=True)
        self._deliver(sync_date, f"forced replay of {sync_date}", force=True)

    def dry_run(self) -> None:
        sync_date = self._some_date(recent=True)
        self.log.append(f"dry run of {sync_date}")
        before_table, before_ledger = table_rows(self.db), self._ledger(sync_date)
        expected = self._outcome(sync_date, force=True, manual=True)
        answer = self._invoke({"sync_date": sync_date.isoformat(), "dry_run": True, "force_resync": True})
        assert answer["status"] == "dry_run", (self.where(), answer)
        for count in COUNTS:
            assert answer.get(count, 0) == expected[count], (self.where(), count, answer, {k: expected[k] for k in expected if k.startswith("rows")})
        assert sorted(answer.get("guards_tripped", [])) == sorted(expected["guards"]), (self.where(), answer)
        assert table_rows(self.db) == before_table, self.where()
        assert self._ledger(sync_date) == before_ledger, self.where()
        self.covered["dry_run"] += 1

    def kill_and_retry(self) -> None:
        """A run killed (SIGKILL) mid-sync in its own process; Lambda's retry of the event, once the lease ran out."""
        sync_date = self._some_date(recent=True)
        self._upload(sync_date, self.generator.correction(self.exports[sync_date].table))
        self.log.append(f"kill mid-sync of {sync_date}")
        worker = invoke_in_a_process(
            self.endpoint,
            self.settings,
            self.work_dir,
            sync_date,
            request_id=f"killed-{self.step}",
            STAGING_CHUNK_ROWS="50",
            MISSING_ROWS="delete" if self.delete_mode else "keep",
        )
        deadline = time.monotonic() + 30
        wanted_chunks = self.rng.randint(0, 4)
        while worker.poll() is None and time.monotonic() < deadline and chunks_committed(self.db, sync_date) < wanted_chunks:
            time.sleep(0.002)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        time.sleep(FIRST_RETRY_SECONDS)  # Lambda's retry comes at its own spacing, whatever the lease
        self.covered["kill"] += 1
        self._deliver(sync_date, f"retry after the kill of {sync_date}", request_id=f"killed-{self.step}", killed=True)

    def schedule(self, day: dt.date | None = None) -> None:
        """The 06:00 run of the morning after `day` (a day of the history, its file there or still to come): the
        day synced as an arrival would be, or failed for want of a file; then the reconcile of the 7 days before it."""
        newest = max(self.exports)
        if day is None:
            days = [FIRST_DAY + dt.timedelta(days=n) for n in range((newest - FIRST_DAY).days + 2)]
            day = self.rng.choice(days[-2:]) if self.rng.random() < 0.5 else self.rng.choice(days)
        first = day - dt.timedelta(days=RECONCILE_DAYS)
        self.log.append(f"06:00 run of {day + dt.timedelta(days=1)} (syncs {day}, reconciles {first} to {day - dt.timedelta(days=1)})")
        self.covered["schedule"] += 1
        # The model, in the order the run goes: its own date, then each recent date it finds to sync.
        expected: list[tuple[dt.date, dict[str, Any]]] = []
        if day in self.exports:
            expected.append((day, self._outcome(day, force=False, manual=False)))
            self.model.apply(day, self.exports[day], expected[-1][1])
        else:
            expected.append((day, {"status": "failed", "guards": [], "no_file": True}))
            self.model.no_file(day)
        for offset in range(RECONCILE_DAYS):
            sync_date = first + dt.timedelta(days=offset)
            export = self.exports.get(sync_date)
            if export is None or not self.model.to_reconcile(sync_date, export):
                continue  # no file (nothing to say), or nothing to do: completed from it, or failed on it for good
            expected.append((sync_date, self._outcome(sync_date, force=False, manual=False)))
            self.model.apply(sync_date, export, expected[-1][1])
            self.covered["reconciled"] += 1
        self._dead_letters()  # what earlier steps left on the queue
        answer = self._invoke(scheduled_event(day))
        results = answer.get("results", [answer])
        statuses = [(result.get("sync_date"), result["status"]) for result in results]
        assert statuses == [(date.isoformat(), outcome["status"]) for date, outcome in expected], (self.where(), statuses, results)
        if len(results) > 1:
            assert answer["status"] == ("failed" if any(s == "failed" for _, s in statuses) else "completed"), (self.where(), answer)
        for (sync_date, outcome), result in zip(expected, results, strict=True):
            if outcome["status"] == "failed":
                wanted = [f"no file at s3://{BUCKET}/{object_key_for(PREFIX, sync_date)}"] if outcome.get("no_file") else outcome["guards"]
                assert all(reason in result["reason"] for reason in wanted), (self.where(), result)
            if outcome["status"] == "completed":
                assert {count: result.get(count, 0) for count in COUNTS} == {count: outcome[count] for count in COUNTS}, (self.where(), result)
        failed = sorted(date.isoformat() for date, outcome in expected if outcome["status"] == "failed")
        assert sorted(letter["sync_date"] for letter in self._dead_letters()) == failed, (self.where(), results)
        assert table_rows(self.db) == self.model.table, self.where()
        for offset in range(RECONCILE_DAYS + 1):
            self._check_ledger(first + dt.timedelta(days=offset))
        if self.delete_mode and any(outcome["status"] == "completed" for _, outcome in expected):
            self.covered["delete_mode_day"] += 1
        assert query(self.db, "SELECT COUNT(*) AS n FROM upsell_signal_sync_metadata WHERE status = 'started'") == [{"n": 0}], self.where()

    def missed_correction_then_the_morning(self) -> None:
        """A correction whose event was dropped, then the next 06:00 run: its reconcile must find it."""
        newest = max(self.exports)
        self.correct(newest, dropped=True)
        self.schedule(newest + dt.timedelta(days=1))

    def toggle_delete_mode(self) -> None:
        self.delete_mode = not self.delete_mode
        self.log.append(f"MISSING_ROWS={'delete' if self.delete_mode else 'keep'}")
        os.environ["MISSING_ROWS"] = "delete" if self.delete_mode else "keep"
        ingest.build_app.cache_clear()

    # plumbing -------------------------------------------------------------------------------------

    def _some_date(self, *, recent: bool) -> dt.date:
        dates = sorted(self.exports)
        return dates[-1] if recent and self.rng.random() < 0.7 else self.rng.choice(dates)

    def _upload(self, sync_date: dt.date, table: pa.Table) -> None:
        path = write_pyarrow(table, self.work_dir / f"upload-{self.step}.parquet", row_group_rows=self.rng.choice([64, 1000]))
        key = object_key_for(PREFIX, sync_date)
        self.s3.upload_file(str(path), BUCKET, key)
        path.unlink()
        etag = str(self.s3.head_object(Bucket=BUCKET, Key=key)["ETag"]).strip('"')
        self.exports[sync_date] = Export(table, etag)

    def _invoke(self, event: dict[str, Any], request_id: str | None = None) -> dict[str, Any]:
        context = LocalContext("ingest", aws_request_id=request_id or f"step-{self.step}-{self.rng.randrange(1 << 30)}")
        try:
            answer: dict[str, Any] = ingest.handler(event, context)
        except PermanentError as error:  # no dead-letter queue configured: permanent failures are raised
            return {"status": "failed", "reason": str(error)}
        return answer

    def _deliver(
        self,
        sync_date: dt.date,
        what: str,
        *,
        force: bool = False,
        overrides: frozenset[str] = frozenset(),
        request_id: str | None = None,
        killed: bool = False,
    ) -> None:
        """The date's S3 event (or a forced replay), then the table, the answer and the ledger against the model."""
        self.log.append(what)
        export = self.exports[sync_date]
        expected = self._outcome(sync_date, force=force, manual=force, overrides=overrides)
        if force:
            event: dict[str, Any] = {"sync_date": sync_date.isoformat(), "force_resync": True}
            if overrides:
                event["override_guards"] = sorted(overrides)
        else:
            event = s3_notification(sync_date, export)
        answer = self._invoke(event, request_id)
        if killed and answer["status"] == "skipped" and expected["status"] == "completed":
            # The killed run had already completed the object before the kill landed.
            expected = {"status": "skipped"}
            self.model.apply(sync_date, export, self._outcome(sync_date, force=True, manual=False))
        else:
            self.model.apply(sync_date, export, expected)
        assert answer["status"] == expected["status"], (self.where(), answer, expected.get("guards"))
        if expected["status"] == "failed":
            for guard in expected["guards"]:
                assert guard in answer["reason"], (self.where(), answer)
        if expected["status"] == "completed" and not killed:
            for count in COUNTS:
                assert answer.get(count, 0) == expected[count], (self.where(), count, answer)
        assert table_rows(self.db) == self.model.table, self.where()
        self._check_ledger(sync_date)
        if self.model.dates[sync_date].status == "completed":
            assert self.model.dates[sync_date].completed_etag == export.etag, self.where()
        if self.delete_mode and expected["status"] == "completed":
            self.covered["delete_mode_day"] += 1
        assert query(self.db, "SELECT COUNT(*) AS n FROM upsell_signal_sync_metadata WHERE status = 'started'") == [{"n": 0}], self.where()

    def _outcome(
        self, sync_date: dt.date, *, force: bool, manual: bool, overrides: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        return self.model.outcome(
            sync_date,
            self.exports[sync_date],
            force=force,
            delete=self.delete_mode,
            manual=manual,
            newer_exports=self.exports,
            overrides=overrides,
        )

    def _check_ledger(self, sync_date: dt.date) -> None:
        """The date's ledger row against the model: its status, and once completed, the ETag it published and its counts."""
        ledger = self._ledger(sync_date)
        state = self.model.dates.get(sync_date, DateState())
        assert (sync_date, ledger["status"]) == (sync_date, state.status), (self.where(), ledger)
        if state.status == "completed":
            assert ledger["completed_etag"] == state.completed_etag, (self.where(), ledger)
            assert {count: ledger[count] for count in COUNTS} == state.counts, (self.where(), ledger)
        if state.status == "failed":
            assert ledger["s3_etag"] == state.failed_on, (self.where(), ledger)

    def _dead_letters(self) -> list[dict[str, Any]]:
        """Every message on the dead-letter queue, taken off it."""
        letters: list[dict[str, Any]] = []
        while messages := self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", []):
            letters += [json.loads(message["Body"]) for message in messages]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]} for n, message in enumerate(messages)],
            )
        return letters

    def _ledger(self, sync_date: dt.date) -> dict[str, Any]:
        rows = query(self.db, "SELECT * FROM upsell_signal_sync_metadata WHERE sync_date = %s", (sync_date,))
        return rows[0] if rows else {"status": None}

    def run(self, days: int, steps: int) -> None:
        """At least `days` arrivals within `steps` steps (arrivals first when the steps left demand it)."""
        actions = [self.correct, self.redeliver, self.replay, self.dry_run, self.kill_and_retry, self.toggle_delete_mode, self.schedule]
        weights = [4, 3, 1, 2, 1, 1, 2]
        for self.step in range(steps):
            arrivals_due = days - len(self.exports)
            if not self.exports or arrivals_due >= steps - self.step or (self.rng.random() < 0.3 and arrivals_due > 0):
                self.arrive()
            else:
                self.rng.choices(actions, weights)[0]()
        self.top_up()

    def top_up(self) -> None:
        """Run what chance left out, so that every history holds each of COVERAGE at least once."""
        steps = {
            "kill": self.kill_and_retry,
            "delete_mode_day": self.delete_mode_day,
            "dry_run": self.dry_run,
            "correction": self.correct,
            "duplicated_event": self.duplicate,
            "dropped_event": lambda: self.correct(dropped=True),
            "schedule": self.schedule,
            "reconciled": self.missed_correction_then_the_morning,
        }
        for _ in range(3):  # a delete-mode day may trip a guard instead: it is tried again
            for kind in [kind for kind in COVERAGE if not self.covered[kind]]:
                self.step += 1
                self.log.append(f"top-up: {kind}")
                steps[kind]()

    def delete_mode_day(self) -> None:
        """The newest date replayed in delete mode; after days in keep mode more than 10% of the table
        may be gone from the file, so delete_ratio is overridden, as an operator would."""
        if not self.delete_mode:
            self.toggle_delete_mode()
        sync_date = max(self.exports)
        self._deliver(sync_date, f"delete-mode replay of {sync_date}", force=True, overrides=frozenset({"delete_ratio"}))


@pytest.fixture
def model_environment(moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name, value in {
        "SIGNALS_BUCKET": BUCKET,
        "AWS_ENDPOINT_URL_S3": moto_endpoint,
        "WORK_DIR": str(tmp_path),
        "STAGING_CHUNK_ROWS": "100",
        "CLAIM_LEASE_SECONDS": str(LEASE_SECONDS),
        "TRANSIENT_RETRIES": "1",
        "MISSING_ROWS": "keep",
    }.items():
        monkeypatch.setenv(name, value)
    # A dead-letter queue, as deployed: a permanent failure is answered (and the 06:00 run goes on to its reconcile).
    queue_url = boto3.client("sqs", endpoint_url=moto_endpoint).create_queue(QueueName="upsell-signals-dlq")["QueueUrl"]
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_endpoint)
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", queue_url)
    ingest.build_app.cache_clear()
    yield tmp_path
    ingest.build_app.cache_clear()


@pytest.mark.slow
def test_a_random_history_of_arrivals_corrections_replays_dry_runs_and_kills_matches_the_model(
    model_environment: Path, moto_endpoint: str, migrated_settings: DatabaseSettings, db: pymysql.Connection[Any]
) -> None:
    # Given a seed (printed, and in every assertion message), a number of days and of steps
    seed = setting("MODEL_SEED", random.SystemRandom().randrange(1 << 31))
    days, steps = setting("MODEL_DAYS", 6), setting("MODEL_STEPS", 24)
    print(f"model history: MODEL_SEED={seed} MODEL_DAYS={days} MODEL_STEPS={steps}")

    # When that random history runs through the real handler (its whole step log printed if it fails)
    history = History(seed, moto_endpoint, migrated_settings, db, model_environment)
    try:
        history.run(days, steps)
    except BaseException:
        print(history.history())
        raise

    # Then every step matched the model (checked inside), and the history covered what it was asked to
    assert len(history.exports) >= days, history.history()
    assert all(history.covered[kind] for kind in COVERAGE), (history.covered, history.history())
