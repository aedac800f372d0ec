"""A day two stages only the rows that differ from the table, and loses no change doing so."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pymysql
import pytest

from functions.ingest.change_detection import compare_file
from functions.ingest.chunks import ObjectDownload, open_file
from functions.ingest.columns import KEY_COLUMN, SIGNAL_COLUMNS, Column, Kind
from functions.ingest.hooks import SyncHooks
from functions.ingest.repository import Repository
from functions.ingest.row_fingerprints import fingerprint_sql
from functions.ingest.row_marks import REJECTED, TO_STAGE
from functions.ingest.service import SyncService
from functions.ingest.sync_values import DurableRun, SyncOptions
from functions.shared.db import connect
from functions.shared.errors import HandedOver
from functions.shared.settings import DatabaseSettings
from functions.status.queries import StatusQueries
from tests.factories import day_two, snowflake_table, write_pyarrow
from tests.integration.conftest import DAY_ONE, DAY_TWO, expected_rows, query, table_rows
from tests.integration.test_backfill import rejecting
from tests.integration.test_hostile_inputs import a_huge_dictionary_value, decoded, parquet_bytes

LOAD_METHODS = ["local_infile", "insert"]


def staged_rows_seen(db: pymysql.Connection[Any]) -> tuple[SyncHooks, list[int]]:
    """Hooks that note how many rows staging holds when the publish starts."""
    seen: list[int] = []

    def count(_repository: Repository) -> None:
        seen.append(int(query(db, "SELECT COUNT(*) AS n FROM upsell_signal_staging")[0]["n"]))

    return SyncHooks(before_publish=count), seen


def _day_one_published_and_day_two_uploaded(
    upload: Callable[..., str], service: SyncService, *, seed: int, model_run_everywhere: bool = False
) -> tuple[pa.Table, pa.Table]:
    """3,000 companies synced by `service` on day one, and a day two (10% changed, 1% new, 1% gone) uploaded."""
    day_one_table = snowflake_table(3_000, seed=seed)
    upload(DAY_ONE, day_one_table)
    service.sync(DAY_ONE, None, SyncOptions(invocation_id="one"))
    day_two_table = day_two(day_one_table, seed=seed + 1, model_run_everywhere=model_run_everywhere)
    upload(DAY_TWO, day_two_table)
    return day_one_table, day_two_table


@pytest.mark.parametrize("load_method", LOAD_METHODS)
def test_a_day_two_stages_only_the_rows_that_differ(
    db: pymysql.Connection[Any], upload: Callable[..., str], make_service: Callable[..., SyncService], load_method: str
) -> None:
    # Given 3,000 companies published, and a day two with 10% changed, 1% new, 1% gone
    day_one_table, day_two_table = _day_one_published_and_day_two_uploaded(
        upload, make_service(STAGING_LOAD_METHOD=load_method), seed=501
    )
    hooks, staged = staged_rows_seen(db)

    # When day two is synced
    service = make_service(STAGING_LOAD_METHOD=load_method)
    service._hooks = hooks
    result = service.sync(DAY_TWO, None, SyncOptions(invocation_id="two"))

    # Then only the new and changed rows were staged, and the table holds the file (and, kept, the gone companies)
    assert result.status == "completed"
    assert staged == [result.rows_inserted + result.rows_updated]
    assert 0 < staged[0] < day_two_table.num_rows / 5
    assert result.rows_unchanged == day_two_table.num_rows - staged[0]
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(day_two_table)}


@pytest.mark.parametrize("missing_rows", ["keep", "delete"])
@pytest.mark.parametrize("model_run_everywhere", [False, True], ids=["few-rows-differ", "every-row-differs"])
def test_a_day_two_compares_only_when_most_rows_are_unchanged_and_ends_exact_either_way(
    db: pymysql.Connection[Any],
    upload: Callable[..., str],
    make_service: Callable[..., SyncService],
    caplog: pytest.LogCaptureFixture,
    missing_rows: str,
    model_run_everywhere: bool,
) -> None:
    # Given 3,000 companies published, and a day two with 10% changed, 1% new, 1% gone (and, or not, every row's model time)
    day_one_table, day_two_table = _day_one_published_and_day_two_uploaded(
        upload, make_service(), seed=511, model_run_everywhere=model_run_everywhere
    )
    hooks, staged = staged_rows_seen(db)

    # When day two is synced
    service = make_service(MISSING_ROWS=missing_rows)
    service._hooks = hooks
    with caplog.at_level("INFO", logger="upsell_signals"):
        result = service.sync(DAY_TWO, None, SyncOptions(invocation_id="two"))

    # Then a compare ran only when few rows differ; every row was staged otherwise
    messages = [record.getMessage() for record in caplog.records]
    compared = any(message.startswith("compared the file with the table") for message in messages)
    assert compared is not model_run_everywhere
    assert any("staging every row, without a compare" in message for message in messages) is model_run_everywhere
    assert staged == [day_two_table.num_rows if model_run_everywhere else result.rows_inserted + result.rows_updated]
    # And the table holds the file: the gone companies kept or deleted, as the mode says
    assert result.status == "completed"
    gone = set(expected_rows(day_one_table)) - set(expected_rows(day_two_table))
    kept = expected_rows(day_one_table) if missing_rows == "keep" else {}
    assert table_rows(db) == {**kept, **expected_rows(day_two_table)}
    assert gone and result.rows_deleted == (len(gone) if missing_rows == "delete" else 0)


def _a_different_value(column: Column) -> str:
    """SQL that sets `column` to a value other than the one it holds (NULL included)."""
    one, other = {
        Kind.STRING: ("'zz'", "'zy'"),
        Kind.BOOL: ("1", "0"),
        Kind.INT: ("7", "8"),
        Kind.RATE: ("0.5", "0.25"),
        Kind.TIMESTAMP: ("'2001-01-01 00:00:00'", "'2001-01-02 00:00:00'"),
    }[column.kind]
    return f"{column.name} = IF({column.name} <=> {one}, {other}, {one})"


def test_a_hand_edit_of_any_one_column_is_found_and_repaired_by_a_forced_resync(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]
) -> None:
    # Given a file published, then one row per data column changed by hand in that column alone
    table = snowflake_table(2_000, seed=503)
    upload(DAY_ONE, table)
    run_sync(DAY_ONE)
    keys = table["CDMS_CANONICAL_COMPANY_ID"].to_pylist()
    data_columns = [column for column in SIGNAL_COLUMNS if column.name != KEY_COLUMN]
    with db.cursor() as cursor:
        for offset, column in enumerate(data_columns):
            changed = cursor.execute(
                f"UPDATE company_upsell_signals SET {_a_different_value(column)} WHERE {KEY_COLUMN} = %s", (keys[10 + offset],)
            )
            assert changed == 1, column.name
    db.commit()

    # When the same file is synced again with force_resync
    result = run_sync(DAY_ONE, force_resync=True)

    # Then every one of those rows is found, and written back to what the file says
    assert (result.status, result.rows_updated, result.rows_inserted) == ("completed", len(data_columns), 0)
    assert table_rows(db) == expected_rows(table)


@pytest.mark.parametrize("load_method", LOAD_METHODS)
def test_a_row_changed_by_hand_is_found_and_repaired_by_a_forced_resync(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any], load_method: str
) -> None:
    # Given a file published, then three rows changed by hand in the table, from a session not
    # in UTC: a number, a timestamp set to NULL, a timestamp moved by one second
    table = snowflake_table(2_000, seed=503)
    upload(DAY_ONE, table)
    run_sync(DAY_ONE, env={"STAGING_LOAD_METHOD": load_method})
    keys = table["CDMS_CANONICAL_COMPANY_ID"].to_pylist()
    started = table["LAST_HI_APP_STARTED_AT"].to_pylist()
    with_a_start = next(key for key, at in zip(keys[30:], started[30:], strict=True) if at is not None)
    with db.cursor() as cursor:
        cursor.execute("SET time_zone = '+02:00'")  # a person's session, not in UTC
        cursor.execute(
            "UPDATE company_upsell_signals SET ee_growth = ee_growth + 1 WHERE cdms_canonical_company_id = %s", (keys[10],)
        )
        cursor.execute(
            "UPDATE company_upsell_signals SET model_updated_at = NULL WHERE cdms_canonical_company_id = %s", (keys[20],)
        )
        cursor.execute(
            "UPDATE company_upsell_signals SET last_hi_app_started_at = last_hi_app_started_at + INTERVAL 1 SECOND "
            "WHERE cdms_canonical_company_id = %s",
            (with_a_start,),
        )
        cursor.execute("SET time_zone = '+00:00'")
    db.commit()
    assert table_rows(db) != expected_rows(table)

    # When the same file is synced again with force_resync
    result = run_sync(DAY_ONE, force_resync=True, env={"STAGING_LOAD_METHOD": load_method})

    # Then the changed rows (and only those) are written back to what the file says
    assert result.status == "completed"
    assert result.rows_updated == 3
    assert result.rows_inserted == 0
    assert table_rows(db) == expected_rows(table)


def test_an_identical_resync_stages_nothing_and_writes_nothing(
    db: pymysql.Connection[Any], upload: Callable[..., str], make_service: Callable[..., SyncService]
) -> None:
    table = snowflake_table(2_000, seed=504)
    upload(DAY_ONE, table)
    make_service().sync(DAY_ONE, None, SyncOptions(invocation_id="one"))
    before = query(db, "SELECT id, updated_at FROM company_upsell_signals ORDER BY id")
    hooks, staged = staged_rows_seen(db)
    service = make_service()
    service._hooks = hooks

    result = service.sync(DAY_ONE, None, SyncOptions(invocation_id="again", force_resync=True))

    assert (result.status, result.rows_updated, result.rows_inserted, result.rows_unchanged) == ("completed", 0, 0, 2_000)
    assert staged == [0]
    assert query(db, "SELECT id, updated_at FROM company_upsell_signals ORDER BY id") == before


def _hand_over_after_the_first_chunk(db: pymysql.Connection[Any], service: SyncService) -> int:
    """Run day two until a chunk is committed, then with only the margin left (TIME_BUDGET_MARGIN_SECONDS, 30 s); its rows read."""

    def seconds_left() -> float:
        db.commit()  # a fresh snapshot
        progress = query(db, "SELECT rows_read FROM upsell_signal_staging_progress WHERE sync_date = %s", (DAY_TWO,))
        return 29.0 if progress and progress[0]["rows_read"] else 600.0

    with pytest.raises(HandedOver):
        service.sync(DAY_TWO, None, SyncOptions(invocation_id="two", seconds_left=seconds_left))
    return int(query(db, "SELECT rows_read FROM upsell_signal_staging_progress")[0]["rows_read"])


def _day_two_handed_over_after_its_first_chunk(
    db: pymysql.Connection[Any], upload: Callable[..., str], make_service: Callable[..., SyncService]
) -> tuple[pa.Table, pa.Table, int]:
    """Day one published, and day two's first run handed over after its first chunk: both files, and the rows read."""
    day_one_table, day_two_table = _day_one_published_and_day_two_uploaded(upload, make_service(), seed=505)
    return day_one_table, day_two_table, _hand_over_after_the_first_chunk(db, make_service())


def test_a_resumed_pass_compares_only_the_rows_it_has_yet_to_stage(
    db: pymysql.Connection[Any],
    upload: Callable[..., str],
    make_service: Callable[..., SyncService],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given day one published, and day two's first run handed over after its first chunk
    day_one_table, day_two_table, rows_read = _day_two_handed_over_after_its_first_chunk(db, upload, make_service)
    assert 0 < rows_read < day_two_table.num_rows

    # When the next run resumes, nothing having been published meanwhile
    with caplog.at_level("INFO", logger="upsell_signals"):
        result = make_service().sync(DAY_TWO, None, SyncOptions(invocation_id="three"))

    # Then it compared the file from where staging stopped, and the table holds the file
    assert (result.status, result.rows_resumed) == ("completed", rows_read)
    assert any(f"compared the file with the table from row {rows_read}:" in record.getMessage() for record in caplog.records)
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(day_two_table)}


def _a_correction_published_changing_a_row_the_pass_found_equal(
    db: pymysql.Connection[Any],
    upload: Callable[..., str],
    make_service: Callable[..., SyncService],
    day_one_table: pa.Table,
    staged_part: pa.Table,
) -> pa.Table:
    """Day one corrected and published: one company of `staged_part` that the pass found equal (unstaged) changed; the file."""
    staged_keys = {
        row["cdms_canonical_company_id"] for row in query(db, "SELECT cdms_canonical_company_id FROM upsell_signal_staging")
    }
    day_one_rows = expected_rows(day_one_table)
    equal_keys = [
        key for key, row in expected_rows(staged_part).items() if day_one_rows.get(key) == row and key not in staged_keys
    ]
    position = day_one_table["CDMS_CANONICAL_COMPANY_ID"].to_pylist().index(equal_keys[0])
    growth = day_one_table["EE_GROWTH"].to_pylist()
    growth[position] = (growth[position] or 0) + 1
    corrected = day_one_table.set_column(
        day_one_table.schema.get_field_index("EE_GROWTH"), "EE_GROWTH", pa.array(growth, day_one_table["EE_GROWTH"].type)
    )
    upload(DAY_ONE, corrected)
    assert make_service().sync(DAY_ONE, None, SyncOptions(invocation_id="correction")).rows_updated == 1
    return corrected


def test_a_resumed_pass_stages_again_when_another_publish_changed_the_table_between_runs(
    db: pymysql.Connection[Any], upload: Callable[..., str], make_service: Callable[..., SyncService]
) -> None:
    # Given day one published, and day two's first run handed over after its first chunk
    day_one_table, day_two_table, rows_read = _day_two_handed_over_after_its_first_chunk(db, upload, make_service)

    # And, between the runs, a correction of day one published, changing a company of day two's
    # first chunk that the pass found equal (and so did not stage)
    corrected = _a_correction_published_changing_a_row_the_pass_found_equal(
        db, upload, make_service, day_one_table, day_two_table.slice(0, rows_read)
    )

    # When day two's next run resumes
    result = make_service().sync(DAY_TWO, None, SyncOptions(invocation_id="three"))

    # Then it staged again from the first row, and the table holds day two's file, that company included
    assert (result.status, result.rows_resumed) == ("completed", 0)
    assert table_rows(db) == {**expected_rows(corrected), **expected_rows(day_two_table)}


def test_a_resumed_pass_stages_again_when_the_table_was_emptied_between_runs(
    db: pymysql.Connection[Any], upload: Callable[..., str], make_service: Callable[..., SyncService]
) -> None:
    # Given day one published, and day two's first run handed over after its first chunk,
    # having staged only the rows of it that differed from the table
    _day_one_table, day_two_table, rows_read = _day_two_handed_over_after_its_first_chunk(db, upload, make_service)
    staged = int(query(db, "SELECT COUNT(*) AS n FROM upsell_signal_staging")[0]["n"])
    assert 0 < staged < rows_read

    # And, between the runs, a person empties the table
    with db.cursor() as cursor:
        cursor.execute("DELETE FROM company_upsell_signals")
    db.commit()

    # When day two's next run resumes
    result = make_service().sync(DAY_TWO, None, SyncOptions(invocation_id="three"))

    # Then it staged again from the first row, and the table holds day two's file, every row of it
    assert (result.status, result.rows_resumed, result.rows_inserted) == ("completed", 0, day_two_table.num_rows)
    assert table_rows(db) == expected_rows(day_two_table)


def durable_run(db: pymysql.Connection[Any], number: int, *, short_once_moved: bool = True) -> SyncOptions:
    """Day two's run `number` of one durable execution (its claims resumed across runs).

    short_once_moved: ten minutes left until its pass has moved since the run began (a chunk
    committed, or the pass begun again), then less than the margin, so it hands over there.
    """
    at_start: list[dict[str, Any]] = []

    def seconds_left() -> float:
        db.commit()  # a fresh snapshot
        progress = query(
            db, "SELECT rows_read, compared_generation FROM upsell_signal_staging_progress WHERE sync_date = %s", (DAY_TWO,)
        )
        now = progress[0] if progress else {"rows_read": 0, "compared_generation": None}
        at_start[:] = at_start or [now]
        return 29.0 if now["rows_read"] and now != at_start[0] else 600.0

    durable = DurableRun(holder_token="f" * 32, execution_arn="arn:aws:lambda:execution", number=number)
    return SyncOptions(
        invocation_id=f"run-{number}", durable_run=durable, seconds_left=seconds_left if short_once_moved else None
    )


def test_a_pass_started_again_under_its_own_claim_records_each_rejected_row_once(
    db: pymysql.Connection[Any], upload: Callable[..., str], make_service: Callable[..., SyncService]
) -> None:
    # Given day one published, and a day two whose first ten rows are invalid
    day_one_table = snowflake_table(3_000, seed=509)
    upload(DAY_ONE, day_one_table)
    make_service().sync(DAY_ONE, None, SyncOptions(invocation_id="one"))
    upload(DAY_TWO, rejecting(day_two(day_one_table, seed=510), list(range(10))))

    # And day two's first run of a durable execution handed over after its first chunk, its rejects recorded
    with pytest.raises(HandedOver):
        make_service().sync(DAY_TWO, None, durable_run(db, 1))
    assert query(db, "SELECT COUNT(*) AS n FROM upsell_signal_rejected_rows")[0]["n"] == 10

    # And, between the runs, a person empties the table, so the next run stages the file again from its first row
    with db.cursor() as cursor:
        cursor.execute("DELETE FROM company_upsell_signals")
    db.commit()

    # When the execution's next run resumes its own claim
    result = make_service().sync(DAY_TWO, None, durable_run(db, 2, short_once_moved=False))

    # Then the answer and the status each count the ten rejected rows once, and list each once
    assert (result.status, result.rows_resumed, result.rows_rejected) == ("completed", 0, 10)
    total, rejects = StatusQueries(db).rejects_for(DAY_TWO, limit=50)
    assert (total, [reject["source_row"] for reject in rejects]) == (10, list(range(10)))


def test_a_pass_started_again_under_its_own_claim_hands_over_at_a_place_of_its_own(
    db: pymysql.Connection[Any], upload: Callable[..., str], make_service: Callable[..., SyncService]
) -> None:
    # Given day one published, and day two's first run of a durable execution handed over after its first chunk
    day_one_table, day_two_table = _day_one_published_and_day_two_uploaded(upload, make_service(), seed=505)

    with pytest.raises(HandedOver) as first:
        make_service().sync(DAY_TWO, None, durable_run(db, 1))
    rows_read = int(query(db, "SELECT rows_read FROM upsell_signal_staging_progress")[0]["rows_read"])

    # And, between the runs, a publish of day one that changes a row the pass found equal
    _a_correction_published_changing_a_row_the_pass_found_equal(
        db, upload, make_service, day_one_table, day_two_table.slice(0, rows_read)
    )

    # When the execution's next run starts the pass again and hands over after its first chunk, at the same row
    with pytest.raises(HandedOver) as second:
        make_service().sync(DAY_TWO, None, durable_run(db, 2))

    # Then it stopped at the same row of a new pass, and says so: the continuation sees progress, not a run stuck
    assert first.value.stopped_at.startswith(f"{DAY_TWO.isoformat()}: staging at row {rows_read} of ")
    assert second.value.stopped_at.startswith(f"{DAY_TWO.isoformat()}: staging at row {rows_read} of ")
    assert first.value.stopped_at != second.value.stopped_at


def test_a_partitioned_compare_finds_what_a_single_one_finds(
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    upload: Callable[..., str],
    run_sync: Callable[..., Any],
    s3_client: Any,
    tmp_path: Path,
) -> None:
    # Given 5,000 companies published and a day two of them
    day_one_table = snowflake_table(5_000, seed=507)
    upload(DAY_ONE, day_one_table)
    run_sync(DAY_ONE)
    day_two_table = day_two(day_one_table, seed=508)
    path = write_pyarrow(day_two_table, tmp_path / f"{uuid.uuid4().hex}.parquet")
    opened = open_file(_downloaded(path))

    # When it is compared in one partition, and in seven (table fingerprints read 300 at a time)
    with closing(Repository(connect(migrated_settings))) as repository:
        single = compare_file(opened, repository.fingerprints, tmp_path / "single", chunk_rows=1_000)
        partitioned = compare_file(opened, repository.fingerprints, tmp_path / "seven", chunk_rows=700, partition_rows=750)
        partitioned_keep = compare_file(
            opened, repository.fingerprints, tmp_path / "keep", chunk_rows=700, partition_rows=750, with_unmatched=False
        )
        pages = list(repository.fingerprints.pages(with_ids=True, page_rows=300))
        without_ids = list(repository.fingerprints.pages(with_ids=False, page_rows=300))

    # Then both mark the same rows and leave the same table fingerprints unmatched
    assert _marked(single) == _marked(partitioned) == _marked(partitioned_keep)
    assert single.rows_to_stage == partitioned.rows_to_stage == partitioned_keep.rows_to_stage
    assert sorted(_unmatched(single)) == sorted(_unmatched(partitioned))
    day_one_rows, day_two_rows = expected_rows(day_one_table), expected_rows(day_two_table)
    assert single.rows_to_stage == sum(1 for key, row in day_two_rows.items() if day_one_rows.get(key) != row)
    assert single.rows_unmatched == sum(1 for key, row in day_one_rows.items() if day_two_rows.get(key) != row)
    # And the paged read of the table's fingerprints holds every row once, with its id
    read = b"".join(page for page, _ in pages)
    ids = [int.from_bytes(page_ids[start : start + 8], "big") for _, page_ids in pages for start in range(0, len(page_ids), 8)]
    stored = {
        row["id"]: row["fingerprint"]
        for row in query(db, f"SELECT id, {fingerprint_sql()} AS fingerprint FROM company_upsell_signals")
    }
    assert len(pages) == len(without_ids) == -(-len(stored) // 300)
    assert dict(zip(ids, (read[start : start + 16] for start in range(0, len(read), 16)), strict=True)) == stored
    # And read without ids, the same fingerprints
    read_alone = b"".join(page for page, _ in without_ids)
    assert sorted(read_alone[start : start + 16] for start in range(0, len(read_alone), 16)) == sorted(stored.values())
    assert len(_marked(single)[TO_STAGE]) == single.rows_to_stage


class _downloaded(ObjectDownload):
    """A file already on disk, as the service's download leaves it."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._downloaded = True
        self._readers = []

    def local_path(self) -> Path:
        return self._path


def _marked(comparison: Any) -> dict[int, list[int]]:
    return {mark: list(comparison.marks.rows_marked(mark)) for mark in (TO_STAGE, REJECTED)}


def _unmatched(comparison: Any) -> list[int]:
    return [row_id for page in comparison.unmatched_pages() for row_id in page]


def test_a_day_two_whose_dictionary_holds_a_huge_value_compares_and_rejects_only_its_rows(
    db: pymysql.Connection[Any], upload: Callable[..., str], make_service: Callable[..., SyncService]
) -> None:
    # Given 3,000 companies published, and a day two whose CORE_PRODUCT is a dictionary holding,
    # besides the file's values, one of 5 MB that three rows point at (read kept as a dictionary)
    service = make_service()
    day_one_table, day_two_table = _day_one_published_and_day_two_uploaded(upload, service, seed=511)
    day_two_table = a_huge_dictionary_value(day_two_table, "CORE_PRODUCT", (5, 6, 7))
    upload(DAY_TWO, raw=parquet_bytes(day_two_table, dictionary_pagesize_limit=64 << 20))

    # When day two is synced (compared with the table first)
    result = service.sync(DAY_TWO, None, SyncOptions(invocation_id="two"))

    # Then exactly those rows are rejected as too long, their companies kept as they were, the rest as the file says
    assert (result.status, result.rows_rejected) == ("completed", 3)
    assert result.rows_unchanged > day_two_table.num_rows / 2  # the compare ran
    assert {row["source_row"]: row["reasons"] for row in query(db, "SELECT * FROM upsell_signal_rejected_rows")} == {
        row: "core_product longer than 16 characters" for row in (5, 6, 7)
    }
    kept = pa.array([row not in (5, 6, 7) for row in range(day_two_table.num_rows)])
    assert table_rows(db) == {
        **expected_rows(day_one_table),
        **expected_rows(decoded("CORE_PRODUCT")(day_two_table).filter(kept)),
    }


def test_a_day_two_whose_text_columns_are_string_views_is_compared_and_stages_only_what_differs(
    db: pymysql.Connection[Any], upload: Callable[..., str], run_sync: Callable[..., Any]
) -> None:
    # Given day one published, and a day two (10% changed, 1% new, 1% gone) whose text columns are
    # string views, as a writer that keeps Arrow's view types in the file's schema leaves them (Polars 1.38)
    day_one_table = snowflake_table(3_000, seed=902)
    upload(DAY_ONE, day_one_table)
    assert run_sync(DAY_ONE).status == "completed"
    day_two_table = day_two(day_one_table, seed=903)
    as_views = pa.table(
        {
            name: pc.cast(column, pa.string_view()) if pa.types.is_string(column.type) else column
            for name, column in zip(day_two_table.column_names, day_two_table.columns, strict=True)
        }
    )
    upload(DAY_TWO, as_views)

    # When day two is synced (few rows differ: the compare marks them, and only those are staged)
    result = run_sync(DAY_TWO)

    # Then it completes, writing only what differs, and the table holds the file (the gone companies kept)
    assert result.status == "completed", result
    assert 0 < result.rows_inserted + result.rows_updated < 3_000 // 5
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(day_two_table)}
