"""A backfill needs no one: dates arriving at once, in any order, end as if they had come in date order."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import random
import time
import tracemalloc
from contextlib import closing
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.compute as pc
import pymysql
import pytest
from botocore.exceptions import ClientError

from functions.ingest import newest_wins
from functions.ingest.actions import StatusRequest
from functions.ingest.claim_rules import ClaimRequest
from functions.ingest.repository import Repository, absent_rows
from functions.ingest.s3_source import SignalObjectStore
from functions.ingest.service import SyncService
from functions.ingest.sync_values import SyncAnswer, SyncOptions
from functions.ingest.work_space import WORK_FILE_PREFIX
from functions.shared.contract import object_key_for
from functions.shared.db import connect
from functions.shared.errors import GuardTripped, HandedOver, PublishTooLong
from functions.shared.settings import DatabaseSettings, load_ingest_settings
from functions.status.format import format_status
from functions.status.report import build_status
from tests.factories import snowflake_table, write_pyarrow
from tests.integration.conftest import (
    BUCKET,
    PREFIX,
    Outcome,
    expected_rows,
    in_a_thread,
    ingest_env,
    query,
    service_on,
    table_rows,
    upload_to,
    work_dir_for,
)
from tests.integration.test_validation_and_guards import with_values

FIRST_DATE = dt.date(2026, 3, 1)
DATES = 10
ROWS = 1_000
SHIFT = 60  # each date's companies start this many ids after the day before's: some come, some go
# Ten dates in any order delete and drift far more than one day would: the ordering is under test here.
OPEN_GUARDS = {"GUARD_MAX_DELETE_RATIO": "1", "GUARD_MAX_ROW_COUNT_DRIFT": "1"}


TOO_LONG = "x" * 17  # for core_product: the row is rejected


def date_files() -> dict[dt.date, pa.Table]:
    """Ten daily files, each overlapping the day before's companies with values of its own."""
    return {
        FIRST_DATE + dt.timedelta(days=day): snowflake_table(ROWS, seed=700 + day, first_id=1 + day * SHIFT)
        for day in range(DATES)
    }


def rejecting(table: pa.Table, rows: list[int]) -> pa.Table:
    """The file with these rows made invalid (each is rejected, leaving its company as it was)."""
    for row in rows:
        table = with_values(table, row, CORE_PRODUCT=TOO_LONG)
    return table


def in_date_order(files: dict[dt.date, pa.Table], *, delete: bool) -> dict[str, dict[str, Any]]:
    """The table after the dates arrived one by one in date order, computed from the files alone.

    A valid row sets its company; a rejected one leaves it as it was; in delete mode a
    company the file lacks is gone.
    """
    table: dict[str, dict[str, Any]] = {}
    for sync_date in sorted(files):
        rejected = pc.equal(files[sync_date]["CORE_PRODUCT"], TOO_LONG).fill_null(False)
        rows = expected_rows(files[sync_date].filter(pc.invert(rejected)))
        rejected_keys = files[sync_date].filter(rejected)["CDMS_CANONICAL_COMPANY_ID"].to_pylist()
        kept = {key: table[key] for key in rejected_keys if key in table}
        table = {**kept, **rows} if delete else {**table, **rows}
    return table


@pytest.mark.parametrize("missing_rows", ["keep", "delete"])
def test_ten_dates_at_once_in_random_order_with_duplicates_end_as_in_date_order(
    missing_rows: str,
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
) -> None:
    # Given ten dates' files in S3, three rows of each rejected (companies the day before
    # carried, and a new one), and their events delivered at once in a random order, a third
    # of them twice (as Lambda may), four at a time
    files = {
        sync_date: rejecting(table, [day % SHIFT, 500 + day, ROWS - 1 - day])
        for day, (sync_date, table) in enumerate(date_files().items())
    }
    for sync_date, table in files.items():
        upload_to(moto_endpoint, sync_date, write_pyarrow(table, tmp_path / f"{sync_date}.parquet"))
    rng = random.Random(missing_rows)
    deliveries = [*files, *rng.sample(sorted(files), DATES // 3)]
    rng.shuffle(deliveries)
    outcomes: dict[str, Outcome] = {}

    # When each delivery runs its sync, as its own execution
    for start in range(0, len(deliveries), 4):
        threads = []
        for number, sync_date in enumerate(deliveries[start : start + 4], start=start):
            name = f"{number}:{sync_date}"
            service = service_on(
                moto_endpoint, migrated_settings, work_dir_for(tmp_path, name), MISSING_ROWS=missing_rows, **OPEN_GUARDS
            )
            options = SyncOptions(invocation_id=name, trigger="eventbridge_s3")
            threads.append(in_a_thread(outcomes, name, lambda s=service, d=sync_date, o=options: s.sync(d, None, o)))
        for thread in threads:
            thread.join(timeout=300)

    # Then no delivery failed, and every date completed
    failures = {name: outcome for name, outcome in outcomes.items() if not isinstance(outcome, SyncAnswer)}
    assert failures == {}
    answers = [outcome for outcome in outcomes.values() if isinstance(outcome, SyncAnswer)]
    assert {answer.status for answer in answers} <= {"completed", "skipped", "in_progress"}
    ledger = query(db, "SELECT sync_date, status FROM upsell_signal_sync_metadata ORDER BY sync_date")
    assert [(row["sync_date"], row["status"]) for row in ledger] == [(sync_date, "completed") for sync_date in sorted(files)]
    # And the table is exactly what the dates in date order would have left
    assert table_rows(db) == in_date_order(files, delete=missing_rows == "delete")
    # And some date was indeed published after a newer one, leaving it the companies it carries
    assert any((getattr(answer, "rows_superseded", 0) or 0) > 0 for answer in answers), [answer.as_dict() for answer in answers]


def test_an_older_date_after_a_newer_one_is_recorded_and_answered_for_what_it_did(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given the second of two dates published first
    files = date_files()
    older, newer = sorted(files)[:2]
    for sync_date in (older, newer):
        upload_to(moto_endpoint, sync_date, write_pyarrow(files[sync_date], tmp_path / f"{sync_date}.parquet"))
    service = service_on(moto_endpoint, migrated_settings, tmp_path, **OPEN_GUARDS)
    service.sync(newer, None, SyncOptions(invocation_id="newer", trigger="eventbridge_s3"))

    # When the older date's event arrives
    result = service.sync(older, None, SyncOptions(invocation_id="older", trigger="eventbridge_s3"))

    # Then it completes, inserting only the companies the newer file lacks and leaving the rest to it
    only_older = ROWS - (ROWS - SHIFT)
    assert (result.status, result.rows_inserted, result.rows_updated) == ("completed", only_older, 0)
    assert (result.rows_superseded, result.rows_unchanged) == (ROWS - SHIFT, 0)
    assert table_rows(db) == in_date_order({older: files[older], newer: files[newer]}, delete=False)
    # And the ledger and the run history record those counts
    [metadata] = query(
        db, "SELECT status, rows_inserted, rows_superseded FROM upsell_signal_sync_metadata WHERE sync_date = %s", (older,)
    )
    assert metadata == {"status": "completed", "rows_inserted": only_older, "rows_superseded": ROWS - SHIFT}
    [run] = query(db, "SELECT status, rows_superseded FROM upsell_signal_sync_runs WHERE sync_date = %s", (older,))
    assert run == {"status": "completed", "rows_superseded": ROWS - SHIFT}
    # And the status report shows them, so the run does not read as rows that went nowhere
    history = build_status(db, StatusRequest(days=3660))
    assert [s["rows_superseded"] for s in history["syncs"] if s["sync_date"] == older.isoformat()] == [ROWS - SHIFT]
    date_report = build_status(db, StatusRequest(sync_date=older))
    assert [r["rows_superseded"] for r in date_report["runs"]] == [ROWS - SHIFT]
    for shown, column, first in (
        (format_status(history), "superseded", older.isoformat()),
        (format_status(date_report), "sup", ""),
    ):
        lines = shown.splitlines()
        at_header = next(index for index, line in enumerate(lines) if f" {column} " in f" {line} ")
        header, rows = lines[at_header], lines[at_header + 2 :]
        row = next(row for row in rows if row.startswith(first))
        at = f" {header} ".index(f" {column} ")
        assert row[at:].split()[0] == f"{ROWS - SHIFT:,}", shown


def claim_again(
    settings: DatabaseSettings, db: pymysql.Connection[Any], sync_date: dt.date, holder: str, *, dry_run: bool
) -> None:
    """A person's claim of a published date for the file it published (a dry run, or a forced re-sync), its lease live."""
    [row] = query(db, "SELECT s3_key, completed_etag FROM upsell_signal_sync_metadata WHERE sync_date = %s", (sync_date,))
    with closing(Repository(connect(settings))) as repository, repository.transaction("a person's claim"):
        request = ClaimRequest(
            sync_date=sync_date,
            s3_key=row["s3_key"],
            etag=row["completed_etag"],
            invocation_id=holder,
            holder_token=holder,
            trigger="manual",
            force_resync=True,
            dry_run=dry_run,
        )
        assert repository.ledger.claim(request, lease_seconds=300).kind == "claimed"


def the_second_date_published(
    files: dict[dt.date, pa.Table], service: SyncService, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> tuple[dt.date, dt.date, dict[str, dict[str, Any]]]:
    """The first two dates, the second synced (by its S3 event) before the first: (older, newer, the table after)."""
    older, newer = sorted(files)[:2]
    upload_to(moto_endpoint, newer, write_pyarrow(files[newer], tmp_path / "newer.parquet"))
    assert service.sync(newer, None, SyncOptions(invocation_id="newer", trigger="eventbridge_s3")).status == "completed"
    return older, newer, table_rows(db)


@pytest.mark.parametrize("missing_rows", ["keep", "delete"])
def test_an_older_date_leaves_alone_a_newer_date_whose_correction_failed(
    missing_rows: str, migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given a newer date published, then a correction of it whose 100 bad rows (companies the
    # date carries) tripped the reject guard: the date is failed, its rows stay published, and
    # the file in S3 is no longer the one it published
    files, service = (
        date_files(),
        service_on(moto_endpoint, migrated_settings, tmp_path, MISSING_ROWS=missing_rows, **OPEN_GUARDS),
    )
    older, newer, published = the_second_date_published(files, service, db, moto_endpoint, tmp_path)
    upload_to(moto_endpoint, newer, write_pyarrow(rejecting(files[newer], list(range(100))), tmp_path / "bad.parquet"))
    with pytest.raises(GuardTripped, match="reject_ratio"):
        service.sync(newer, None, SyncOptions(invocation_id="correction", trigger="eventbridge_s3"))
    [ledger] = query(db, "SELECT status FROM upsell_signal_sync_metadata WHERE sync_date = %s", (newer,))
    assert ledger == {"status": "failed"} and table_rows(db) == published

    # When the older date's event arrives, and then a person replays it by hand
    upload_to(moto_endpoint, older, write_pyarrow(files[older], tmp_path / "older.parquet"))
    result = service.sync(older, None, SyncOptions(invocation_id="older", trigger="eventbridge_s3"))
    with pytest.raises(GuardTripped, match="stale_date"):
        service.sync(older, None, SyncOptions(invocation_id="person", force_resync=True))

    # Then it completes, leaving every company of the newer date as that date published it:
    # the table is what date order leaves
    assert result.status == "completed"
    assert table_rows(db) == in_date_order({older: files[older], newer: files[newer]}, delete=missing_rows == "delete")
    assert {key: table_rows(db)[key] for key in published} == published


@pytest.mark.parametrize("missing_rows", ["keep", "delete"])
def test_an_older_date_after_a_newer_one_whose_file_is_gone_writes_nothing_it_may_have_published(
    missing_rows: str, migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given a newer date published, and then its file removed from S3 (a lifecycle rule, a person)
    files, service = (
        date_files(),
        service_on(moto_endpoint, migrated_settings, tmp_path, MISSING_ROWS=missing_rows, **OPEN_GUARDS),
    )
    older, newer, published = the_second_date_published(files, service, db, moto_endpoint, tmp_path)
    boto3.client("s3", endpoint_url=moto_endpoint).delete_object(Bucket=BUCKET, Key=object_key_for(PREFIX, newer))

    # When the older date's event arrives
    upload_to(moto_endpoint, older, write_pyarrow(files[older], tmp_path / "older.parquet"))
    result = service.sync(older, None, SyncOptions(invocation_id="older", trigger="eventbridge_s3"))

    # Then it completes with no dead letter, and no company the newer date published changes
    assert result.status == "completed"
    assert {key: table_rows(db)[key] for key in published} == published
    assert table_rows(db) == in_date_order({older: files[older], newer: files[newer]}, delete=missing_rows == "delete")


@pytest.mark.parametrize(
    ("newest_lacks", "only_the_oldest_has", "files_validated", "looked_for_here"),
    [(0, 0, 1, 150_000), (10, 0, 2, 150_000), (0, 10, 1, 150_000), (0, 10, 1, 100)],
    ids=[
        "the newest carries every change",
        "the newest lacks ten",
        "ten companies only the oldest has",
        "the same, the newest's keys sent to the server",
    ],
)
def test_an_older_date_reads_only_the_newer_files_that_decide_its_changes(
    newest_lacks: int,
    only_the_oldest_has: int,
    files_validated: int,
    looked_for_here: int,
    monkeypatch: pytest.MonkeyPatch,
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given three dates of the same 1,000 companies with values of their own (the newest lacking
    # the last `newest_lacks`, the oldest with `only_the_oldest_has` more), the two newer ones published
    oldest, middle, newest = (FIRST_DATE + dt.timedelta(days=day) for day in range(3))
    files = {
        sync_date: snowflake_table(ROWS, seed=900 + day, first_id=1) for day, sync_date in enumerate((oldest, middle, newest))
    }
    files[newest] = files[newest].slice(0, ROWS - newest_lacks)
    files[oldest] = pa.concat_tables([files[oldest], snowflake_table(only_the_oldest_has, seed=909, first_id=ROWS + 1)])
    for sync_date, table in files.items():
        upload_to(moto_endpoint, sync_date, write_pyarrow(table, tmp_path / f"{sync_date}.parquet"))
    publisher = service_on(moto_endpoint, migrated_settings, tmp_path, **OPEN_GUARDS)
    for sync_date in (newest, middle):
        assert (
            publisher.sync(sync_date, None, SyncOptions(invocation_id=f"{sync_date}", trigger="eventbridge_s3")).status
            == "completed"
        )

    # When the oldest date's event arrives (its changes looked for here up to `looked_for_here`, then
    # the server gathering every key of the newest file), on a service whose S3 reads are counted
    monkeypatch.setattr(newest_wins, "CHANGES_LOOKED_FOR_HERE", looked_for_here)
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    keys_read: list[str] = []
    client.meta.events.register("before-parameter-build.s3.GetObject", lambda params, **_: keys_read.append(params["Key"]))
    counted = SyncService(
        load_ingest_settings(ingest_env(WORK_DIR=str(tmp_path), **OPEN_GUARDS)),
        lambda: connect(migrated_settings, local_infile=True),
        SignalObjectStore(client, BUCKET),
    )
    with caplog.at_level(logging.INFO, logger="upsell_signals.ingest"):
        result = counted.sync(oldest, None, SyncOptions(invocation_id="oldest", trigger="eventbridge_s3"))

    # Then every change it found is left to a newer date but the companies only it has, and the
    # table is what date order leaves
    assert (result.status, result.rows_inserted, result.rows_updated) == ("completed", only_the_oldest_has, 0)
    assert result.rows_superseded + result.rows_unchanged == ROWS and result.rows_superseded > ROWS // 2
    assert table_rows(db) == in_date_order(files, delete=False)
    # And it read the middle date's file only when the newest left some change undecided, and
    # validated it only when its key column held one of those
    files_read = 2 if newest_lacks or only_the_oldest_has else 1
    expected = {oldest, newest} | ({middle} if files_read == 2 else set())
    assert set(keys_read) == {object_key_for(PREFIX, sync_date) for sync_date in expected}, keys_read
    assert f"({files_read} of their files read, {files_validated} validated)" in caplog.text, caplog.text


def test_an_older_date_whose_publish_fits_only_without_reading_the_newer_file_is_handed_over_to_a_fresh_run(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given a newer date published, and an older date whose own publish takes no time at the configured
    # rate, but whose publish reads the newer date's 1,000 rows too: 50 s at 20 rows/s, which a fresh
    # run of 60 s (5 s margin) holds and a run with 20 s left does not
    files = date_files()
    rates = {"PUBLISH_ROWS_PER_SECOND": "1000000", "NEWER_FILE_ROWS_PER_SECOND": "20", "TIME_BUDGET_MARGIN_SECONDS": "5"}
    service = service_on(moto_endpoint, migrated_settings, tmp_path, **OPEN_GUARDS, **rates)
    older, newer, _ = the_second_date_published(files, service, db, moto_endpoint, tmp_path)
    upload_to(moto_endpoint, older, write_pyarrow(files[older], tmp_path / "older.parquet"))
    started = time.monotonic()
    late = SyncOptions(
        invocation_id="older", trigger="eventbridge_s3", run_seconds=60, seconds_left=lambda: 20 - (time.monotonic() - started)
    )

    # When that run syncs the older date
    with pytest.raises(HandedOver) as handed:
        service.sync(older, None, late)

    # Then it stages and hands over before the publish, naming the newer file's rows, and Lambda's
    # retry, a fresh run, publishes it: the table is what date order leaves
    assert f"reading {ROWS} rows of a newer date's file" in str(handed.value), handed.value
    retried = service.sync(older, None, SyncOptions(invocation_id="older", trigger="eventbridge_s3", seconds_left=lambda: 60.0))
    assert (retried.status, retried.rows_superseded > 0) == ("completed", True), retried.as_dict()
    assert table_rows(db) == in_date_order({older: files[older], newer: files[newer]}, delete=False)


def test_an_older_date_whose_newer_file_no_run_can_read_with_its_publish_fails_once_plainly(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given a newer date published, and reading its 1,000 rows at 10 rows/s: 100 s, more than a 60 s run
    files = date_files()
    rates = {"PUBLISH_ROWS_PER_SECOND": "1000000", "NEWER_FILE_ROWS_PER_SECOND": "10", "TIME_BUDGET_MARGIN_SECONDS": "5"}
    service = service_on(moto_endpoint, migrated_settings, tmp_path, **OPEN_GUARDS, **rates)
    older, _, published = the_second_date_published(files, service, db, moto_endpoint, tmp_path)
    upload_to(moto_endpoint, older, write_pyarrow(files[older], tmp_path / "older.parquet"))

    # When a fresh run syncs the older date
    with pytest.raises(PublishTooLong) as refused:
        service.sync(older, None, SyncOptions(invocation_id="older", trigger="eventbridge_s3", seconds_left=lambda: 60.0))

    # Then it fails for good before staging a row (every run would be killed in its publish),
    # saying why, and the table is as the newer date left it
    assert f"publishing {ROWS} rows and reading the {ROWS} rows of a newer date's file needs about 100s" in str(refused.value)
    assert query(db, "SELECT COUNT(*) AS n FROM upsell_signal_staging WHERE sync_date = %s", (older,)) == [{"n": 0}]
    assert table_rows(db) == published


@pytest.mark.parametrize("missing_rows", ["keep", "delete"])
def test_an_older_date_whose_publish_cannot_read_every_newer_file_it_needs_hands_over_with_nothing_written(
    missing_rows: str,
    monkeypatch: pytest.MonkeyPatch,
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
) -> None:
    # Given three dates of the same companies, the two newer published, whose newest leaves the
    # middle one to be read too (keep: it lacks the last 100 companies; delete: both reject one)
    oldest, middle, newest = (FIRST_DATE + dt.timedelta(days=day) for day in range(3))
    files = {
        sync_date: snowflake_table(ROWS, seed=930 + day, first_id=1) for day, sync_date in enumerate((oldest, middle, newest))
    }
    if missing_rows == "keep":
        files[newest] = files[newest].slice(0, ROWS - 100)
    else:
        files[middle], files[newest] = rejecting(files[middle], [5]), rejecting(files[newest], [5])
    for sync_date, table in files.items():
        upload_to(moto_endpoint, sync_date, write_pyarrow(table, tmp_path / f"{sync_date}.parquet"))
    env = {"MISSING_ROWS": missing_rows, "GUARD_MAX_REJECT_RATIO": "1", "TIME_BUDGET_MARGIN_SECONDS": "5", **OPEN_GUARDS}
    service = service_on(moto_endpoint, migrated_settings, tmp_path, **env)
    for sync_date in (newest, middle):
        assert service.sync(sync_date, None, SyncOptions(invocation_id=f"{sync_date}", trigger="eventbridge_s3")).status == (
            "completed"
        )
    published = table_rows(db)
    # and S3 slow to hand over a newer date's file: 3 s each, which the estimate before the publish does not know
    download = SignalObjectStore.download

    def slowly(store: SignalObjectStore, info: Any, destination: Path) -> None:
        if destination.name.startswith(f"{WORK_FILE_PREFIX}newer-"):
            time.sleep(3)
        download(store, info, destination)

    monkeypatch.setattr(SignalObjectStore, "download", slowly)

    def run_with(seconds: float) -> SyncOptions:
        started = time.monotonic()
        return SyncOptions(
            invocation_id="older",
            trigger="eventbridge_s3",
            run_seconds=60,
            seconds_left=lambda: seconds - (time.monotonic() - started),
        )

    # When the older date's run has 10 s (5 of them margin), and its retry 9 s: each reads the newest
    # file in its publish and has no room left for another as slow
    stopped = []
    for seconds in (10, 9):
        with pytest.raises(HandedOver) as handed:
            service.sync(oldest, None, run_with(seconds))
        stopped.append(handed.value.stopped_at)

    # Then each hands over inside the publish with nothing written, at the same place, so that the
    # engine ends the execution with "no progress" instead of a kill at every timeout
    assert stopped == [f"{oldest}: reading newer dates' files inside its publish"] * 2, stopped
    assert table_rows(db) == published
    # And a run with the time publishes it as date order leaves it
    assert service.sync(oldest, None, run_with(60)).status == "completed"
    assert table_rows(db) == in_date_order(files, delete=missing_rows == "delete")
    runs = query(db, "SELECT status FROM upsell_signal_sync_runs WHERE sync_date = %s ORDER BY id", (oldest,))
    assert [run["status"] for run in runs] == ["handed_over", "handed_over", "completed"], runs


# Reading the newer date's 1,000 rows at 10 rows/s: 100 s, more than a fresh 60 s run (5 s margin) holds.
SLOW_NEWER_READ = {"PUBLISH_ROWS_PER_SECOND": "1000000", "NEWER_FILE_ROWS_PER_SECOND": "10", "TIME_BUDGET_MARGIN_SECONDS": "5"}


@pytest.mark.parametrize(
    ("dry_run", "fails"),
    [(True, False), (False, False), (False, True)],
    ids=["a dry run holds it", "a re-sync of its same file is under way", "a re-sync of its same file failed"],
)
def test_the_newer_file_an_older_date_reads_is_counted_while_a_later_claim_holds_its_date(
    dry_run: bool,
    fails: bool,
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
) -> None:
    # Given a newer date published, then claimed again for the file it published (a dry run, or a
    # person's re-sync, under way or failed): the claim clears the ledger's counts, not what it published
    files = date_files()
    service = service_on(moto_endpoint, migrated_settings, tmp_path, **OPEN_GUARDS, **SLOW_NEWER_READ)
    older, newer, _ = the_second_date_published(files, service, db, moto_endpoint, tmp_path)
    claim_again(migrated_settings, db, newer, "person", dry_run=dry_run)
    if fails:
        with closing(Repository(connect(migrated_settings))) as repository, repository.transaction("its failure"):
            assert repository.ledger.fail(newer, "person", "TransientError: the database was away", 1000)
    upload_to(moto_endpoint, older, write_pyarrow(files[older], tmp_path / "older.parquet"))

    # When a fresh 60 s run syncs the older date, whose publish would read the newer date's file
    # Then it is refused as it is without that claim: reading 1,000 rows at 10/s needs 100 s
    with pytest.raises(PublishTooLong, match=f"reading the {ROWS} rows of a newer date's file"):
        service.sync(older, None, SyncOptions(invocation_id="older", trigger="eventbridge_s3", seconds_left=lambda: 60.0))


def test_an_older_date_is_not_refused_for_a_newer_file_it_cannot_read(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given a newer date published, its file since removed from S3, and the same slow rate as above
    files = date_files()
    service = service_on(moto_endpoint, migrated_settings, tmp_path, **OPEN_GUARDS, **SLOW_NEWER_READ)
    older, newer, _ = the_second_date_published(files, service, db, moto_endpoint, tmp_path)
    boto3.client("s3", endpoint_url=moto_endpoint).delete_object(Bucket=BUCKET, Key=object_key_for(PREFIX, newer))
    upload_to(moto_endpoint, older, write_pyarrow(files[older], tmp_path / "older.parquet"))

    # When a fresh 60 s run syncs the older date, Then it completes: there is no file to read
    result = service.sync(older, None, SyncOptions(invocation_id="older", trigger="eventbridge_s3", seconds_left=lambda: 60.0))
    assert result.status == "completed", result.as_dict()
    assert table_rows(db) == in_date_order({older: files[older], newer: files[newer]}, delete=False)


def test_the_budget_counts_the_newer_file_read_when_the_newest_is_no_longer_as_published(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given three dates, the two newer published, the newest since replaced by a correction not yet
    # synced; the middle file holds, as a rejected row, a company only the oldest has (so the
    # oldest's publish validates the middle file, looking for that new company there)
    files = date_files()
    oldest, middle, newest = sorted(files)[:3]
    files[middle] = pa.concat_tables([files[middle], rejecting(files[oldest].slice(0, 1), [0])])
    service = service_on(moto_endpoint, migrated_settings, tmp_path, **OPEN_GUARDS, **SLOW_NEWER_READ)
    for sync_date in (newest, middle):
        upload_to(moto_endpoint, sync_date, write_pyarrow(files[sync_date], tmp_path / f"{sync_date}.parquet"))
        assert service.sync(sync_date, None, SyncOptions(invocation_id=f"{sync_date}", trigger="eventbridge_s3")).status == (
            "completed"
        )
    upload_to(moto_endpoint, newest, write_pyarrow(rejecting(files[newest], [5]), tmp_path / "correction.parquet"))
    upload_to(moto_endpoint, oldest, write_pyarrow(files[oldest], tmp_path / "oldest.parquet"))

    # When a fresh 60 s run syncs the oldest date
    # Then the middle file its publish would read is counted (1,001 rows at 10/s), and it is refused
    with pytest.raises(PublishTooLong, match=f"reading the {ROWS + 1} rows of a newer date's file"):
        service.sync(oldest, None, SyncOptions(invocation_id="oldest", trigger="eventbridge_s3", seconds_left=lambda: 60.0))


def test_an_s3_error_looking_up_a_newer_file_the_publish_does_not_read_fails_nothing(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given a newer date published, and an older date whose file is the same (it writes nothing, so
    # its publish reads no newer file), on a service whose S3 answers SlowDown for the newer object
    files = date_files()
    older, newer, published = the_second_date_published(
        files, service_on(moto_endpoint, migrated_settings, tmp_path, **OPEN_GUARDS), db, moto_endpoint, tmp_path
    )
    upload_to(moto_endpoint, older, write_pyarrow(files[newer], tmp_path / "older.parquet"))
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    newer_key = object_key_for(PREFIX, newer)

    def slow_down(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == newer_key:
            raise ClientError({"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "HeadObject")

    client.meta.events.register("before-parameter-build.s3.HeadObject", slow_down)
    service = SyncService(
        load_ingest_settings(ingest_env(WORK_DIR=str(tmp_path), **OPEN_GUARDS)),
        lambda: connect(migrated_settings, local_infile=True),
        SignalObjectStore(client, BUCKET),
        sleep=lambda _seconds: None,
    )

    # When the older date syncs, Then it completes, writing nothing
    result = service.sync(older, None, SyncOptions(invocation_id="older", trigger="eventbridge_s3"))
    assert (result.status, result.rows_inserted, result.rows_updated) == ("completed", 0, 0), result.as_dict()
    assert table_rows(db) == published


CHANGED_ROWS = 60_000


@pytest.mark.parametrize("looked_for_here", [True, False], ids=["changes looked for here", "every key to the server"])
def test_an_older_date_changing_every_row_leaves_them_to_the_newer_date_on_either_path(
    looked_for_here: bool,
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given two dates of the same 60,000 companies, every value differing (a file that stamps its
    # run time on each row), the newer published; and the older date's changes either few enough
    # to look for here or (the limit lowered) sent to the server with every key of the newer file
    older, newer = FIRST_DATE, FIRST_DATE + dt.timedelta(days=1)
    files = {older: snowflake_table(CHANGED_ROWS, seed=11), newer: snowflake_table(CHANGED_ROWS, seed=12)}
    for sync_date, table in files.items():
        upload_to(moto_endpoint, sync_date, write_pyarrow(table, tmp_path / f"{sync_date}.parquet"))
    service = service_on(moto_endpoint, migrated_settings, tmp_path, STAGING_CHUNK_ROWS="10000", **OPEN_GUARDS)
    assert service.sync(newer, None, SyncOptions(invocation_id="newer", trigger="eventbridge_s3")).status == "completed"
    if not looked_for_here:
        monkeypatch.setattr(newest_wins, "CHANGES_LOOKED_FOR_HERE", 1_000)

    # When the older date publishes, its Python allocations traced while it leaves its changes
    peaks: list[int] = []
    supersede = newest_wins.NewerFiles.supersede

    def traced(self: newest_wins.NewerFiles, *args: Any, **kwargs: Any) -> Any:
        tracemalloc.start()
        try:
            return supersede(self, *args, **kwargs)
        finally:
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()

    monkeypatch.setattr(newest_wins.NewerFiles, "supersede", traced)
    result = service.sync(older, None, SyncOptions(invocation_id="older", trigger="eventbridge_s3"))

    # Then every change is left to the newer date, and the table is what date order leaves
    assert (result.status, result.rows_superseded, result.rows_updated) == ("completed", CHANGED_ROWS, 0)
    assert table_rows(db) == in_date_order(files, delete=False)
    # And what it held in Python is a chunk's work (under 12 MiB, measured 9.6) and, looked for
    # here, the changes' companies (about 160 bytes each); not every change's when the server looks
    bound = 12 * 2**20 + (250 * CHANGED_ROWS if looked_for_here else 0)
    assert max(peaks) < bound, f"peak {max(peaks) / 2**20:.1f} MiB of Python objects for {CHANGED_ROWS} changes"


def test_an_older_date_leaves_alone_a_newer_date_a_dry_run_holds(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given a newer date published, and now held by an operator's dry run of it (a second
    # invocation's real claim, its lease live, as while it downloads)
    files, service = date_files(), service_on(moto_endpoint, migrated_settings, tmp_path, **OPEN_GUARDS)
    older, newer, published = the_second_date_published(files, service, db, moto_endpoint, tmp_path)
    claim_again(migrated_settings, db, newer, "operator-dry-run", dry_run=True)

    # When the older date's event arrives meanwhile
    upload_to(moto_endpoint, older, write_pyarrow(files[older], tmp_path / "older.parquet"))
    result = service.sync(older, None, SyncOptions(invocation_id="older", trigger="eventbridge_s3"))

    # Then the newer date's companies keep its values: only those its file lacks are the older date's
    assert (result.status, result.rows_superseded, result.rows_inserted) == ("completed", ROWS - SHIFT, SHIFT)
    assert table_rows(db) == in_date_order({older: files[older], newer: files[newer]}, delete=False)
    assert {key: table_rows(db)[key] for key in published} == published


# Three dates of a delete-mode table. Companies 1-4 on the first; the second drops 4 and
# adds 5; the third rejects 2 and 4 and lacks 5. In date order: 1 and 3 as the third has
# them, 2 as the second left it, 4 gone (the second deleted it, the third's rejected row
# leaves it gone), 5 gone.
def three_dates_with_rejected_rows() -> dict[dt.date, pa.Table]:
    first = snowflake_table(4, seed=31, first_id=1)
    second = snowflake_table(5, seed=32, first_id=1).take([0, 1, 2, 4])
    third = rejecting(snowflake_table(4, seed=33, first_id=1), [1, 3])
    return {FIRST_DATE + dt.timedelta(days=day): table for day, table in enumerate((first, second, third))}


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))), ids=lambda order: "-".join(map(str, order)))
def test_in_delete_mode_a_company_every_newer_file_rejected_is_written_by_the_older_date(
    order: tuple[int, ...], migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given three dates whose newest rejects two companies, in delete mode
    files = three_dates_with_rejected_rows()
    dates = sorted(files)
    for sync_date, table in files.items():
        upload_to(moto_endpoint, sync_date, write_pyarrow(table, tmp_path / f"{sync_date}.parquet"))
    service = service_on(
        moto_endpoint, migrated_settings, tmp_path, MISSING_ROWS="delete", GUARD_MAX_REJECT_RATIO="1", **OPEN_GUARDS
    )

    # When they arrive in this order
    answers = [service.sync(dates[i], None, SyncOptions(invocation_id=f"d{i}", trigger="eventbridge_s3")) for i in order]

    # Then every date completes, and the table is what date order leaves
    assert [answer.status for answer in answers] == ["completed"] * 3
    expected = in_date_order(files, delete=True)
    assert sorted(expected) == ["cdms-000000001", "cdms-000000002", "cdms-000000003"], expected
    assert table_rows(db) == expected


def test_in_delete_mode_an_older_date_fills_an_empty_table_with_what_the_newer_rejected(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given a newer date whose file's only row was rejected, published first into an empty table
    older_table = snowflake_table(2, seed=41, first_id=1)
    newer_table = rejecting(snowflake_table(2, seed=42, first_id=1).take([1]), [0])
    older, newer = FIRST_DATE, FIRST_DATE + dt.timedelta(days=1)
    upload_to(moto_endpoint, older, write_pyarrow(older_table, tmp_path / "older.parquet"))
    upload_to(moto_endpoint, newer, write_pyarrow(newer_table, tmp_path / "newer.parquet"))
    service = service_on(
        moto_endpoint, migrated_settings, tmp_path, MISSING_ROWS="delete", GUARD_MAX_REJECT_RATIO="1", **OPEN_GUARDS
    )
    assert service.sync(newer, None, SyncOptions(invocation_id="newer", trigger="eventbridge_s3")).status == "completed"
    assert table_rows(db) == {}

    # When the older date arrives
    result = service.sync(older, None, SyncOptions(invocation_id="older", trigger="eventbridge_s3"))

    # Then it writes the company the newer date rejected, and leaves out the one the newer date lacks
    assert (result.status, result.rows_inserted, result.rows_superseded) == ("completed", 1, 1)
    assert table_rows(db) == in_date_order({older: older_table, newer: newer_table}, delete=True)
    assert sorted(table_rows(db)) == ["cdms-000000002"]


def test_in_delete_mode_an_older_date_compared_with_the_table_deletes_only_what_it_lacks(
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given three dates in delete mode: the first carries 200 companies and 300 to 302; the
    # newest carries the 200 with other values and rejects 300 to 302; the middle one carries
    # the newest's 200 rows (so it is compared with the table, not staged) and 301 as the
    # first had it. Its deletes go one id a statement.
    monkeypatch.setattr(absent_rows, "DELETE_IDS_PER_STATEMENT", 1)
    common = snowflake_table(200, seed=51, first_id=1)
    pair = snowflake_table(3, seed=52, first_id=300)
    first, middle, newest = (FIRST_DATE + dt.timedelta(days=day) for day in range(3))
    files = {
        first: pa.concat_tables([snowflake_table(200, seed=53, first_id=1), pair]),
        middle: pa.concat_tables([common, pair.take([1])]),
        newest: pa.concat_tables([common, rejecting(pair, [0, 1, 2])]),
    }
    for sync_date, table in files.items():
        upload_to(moto_endpoint, sync_date, write_pyarrow(table, tmp_path / f"{sync_date}.parquet"))
    service = service_on(moto_endpoint, migrated_settings, tmp_path, MISSING_ROWS="delete", **OPEN_GUARDS)

    # When the first and the newest publish, and then the middle one
    answers = [
        service.sync(day, None, SyncOptions(invocation_id=str(day), trigger="eventbridge_s3")) for day in (first, newest, middle)
    ]

    # Then the middle date deletes 300 and 302, which it lacks, and keeps 301, which it carries unchanged
    assert [answer.status for answer in answers] == ["completed"] * 3
    assert (answers[-1].rows_deleted, answers[-1].rows_unchanged) == (2, 201)
    assert table_rows(db) == in_date_order(files, delete=True)
    assert {"cdms-000000300", "cdms-000000301", "cdms-000000302"} & set(table_rows(db)) == {"cdms-000000301"}


@pytest.mark.parametrize("order", ["date order", "newest first"])
def test_growing_dates_within_the_drift_limit_day_to_day_complete_in_any_order_under_the_default_guards(
    order: str, migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given three dates of 1,000, 1,290 and 1,660 companies, each within row_count_drift's 30% of
    # the day before (but the first 40% from the last), each carrying the day before's companies
    sizes = dict(zip(sorted(date_files())[:3], (1_000, 1_290, 1_660), strict=True))
    files = {day: snowflake_table(rows, seed=900 + rows, first_id=1) for day, rows in sizes.items()}
    for sync_date, table in files.items():
        upload_to(moto_endpoint, sync_date, write_pyarrow(table, tmp_path / f"{sync_date}.parquet"))
    service = service_on(moto_endpoint, migrated_settings, tmp_path)  # the default guards

    # When their events arrive in date order, or newest first (a backfill in any order)
    arrivals = sorted(files) if order == "date order" else sorted(files, reverse=True)
    statuses = [service.sync(day, None, SyncOptions(invocation_id=str(day), trigger="eventbridge_s3")).status for day in arrivals]

    # Then each is judged against the day before it, as in date order: all complete, the table as in date order
    assert statuses == ["completed"] * 3
    assert table_rows(db) == in_date_order(files, delete=False)
