"""Bounded waits: a database that stops answering mid-statement costs the read timeout, not the function's."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pymysql
import pytest

from functions.ingest import change_detection
from functions.ingest.hooks import SyncHooks
from functions.ingest.repository import Repository
from functions.ingest.sync_values import SyncOptions
from functions.shared.db import connect
from functions.shared.errors import HandedOver, TransientError
from functions.shared.locks import get_lock
from functions.shared.settings import DatabaseSettings
from tests.integration.conftest import (
    DAY_TWO,
    day_one_published_and_day_two_uploaded,
    expected_rows,
    messages,
    query,
    service_on,
    table_rows,
    wait_for,
    work_dir_for,
)
from tests.stand_ins import black_hole_proxy

READ_TIMEOUT_SECONDS = 6
IDLE_TIMEOUT_SECONDS = 4


def test_a_server_silent_mid_statement_fails_the_attempt_as_transient_within_the_read_timeout_and_the_next_resumes(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given day one published, and day two staged in chunks of 1,000 through a proxy that,
    # at the third chunk's LOAD DATA, stops forwarding anything either way and keeps both sockets open
    day_one_table, day_two_table = day_one_published_and_day_two_uploaded(
        moto_endpoint, migrated_settings, tmp_path, 20_000, seed=131
    )
    assert migrated_settings.host is not None
    with black_hole_proxy(
        migrated_settings.host, migrated_settings.port, trigger=b"INTO TABLE upsell_signal_staging", after=2
    ) as proxy:
        through_proxy = replace(
            migrated_settings,
            host="127.0.0.1",
            port=proxy.port,
            read_timeout_seconds=READ_TIMEOUT_SECONDS,
            idle_timeout_seconds=IDLE_TIMEOUT_SECONDS,
        )
        service = service_on(moto_endpoint, through_proxy, tmp_path, TRANSIENT_RETRIES="0")

        # When the attempt runs (no in-process retry: the next attempt is Lambda's)
        with pytest.raises(TransientError, match=r"Lost connection.*timed out"):
            service.sync(DAY_TWO, None, SyncOptions(invocation_id="partitioned"))
        gave_up_after = time.monotonic() - (proxy.black_holed_at or 0)

        # Then it gave up as transient once the read timeout passed, not at the function's timeout;
        # the failure is recorded, the committed chunks kept, and the server ends the
        # silent session by itself (its idle timeouts), releasing what it held
        assert proxy.black_holed.is_set()
        assert READ_TIMEOUT_SECONDS <= gave_up_after < READ_TIMEOUT_SECONDS + 5
        metadata = query(db, "SELECT status, error_message FROM upsell_signal_sync_metadata WHERE sync_date = %s", (DAY_TWO,))
        assert metadata[0]["status"] == "failed" and "timed out" in metadata[0]["error_message"]
        committed = int(query(db, "SELECT rows_read FROM upsell_signal_staging_progress")[0]["rows_read"])
        assert committed == 2_000
        wait_for(proxy.server_hung_up.is_set, 4 * IDLE_TIMEOUT_SECONDS, "the server to end the silent session")

    # And the next attempt resumes after the committed chunks and publishes exactly
    result = service_on(moto_endpoint, migrated_settings, tmp_path).sync(DAY_TWO, None, SyncOptions(invocation_id="retry"))
    assert (result.status, result.claim_number, result.rows_resumed) == ("completed", 2, committed)
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(day_two_table)}


def test_a_named_lock_wait_longer_than_the_read_timeout_is_the_servers_answer_not_a_lost_connection(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any]
) -> None:
    # Given a named lock held by another session, and a connection whose read timeout is 1 s
    db.cursor().execute("SELECT GET_LOCK('busy', 0)")
    waiter = connect(replace(migrated_settings, read_timeout_seconds=1))
    try:
        # When it waits 3 s for the lock
        started = time.monotonic()
        taken = get_lock(waiter, "busy", 3)

        # Then the server's "not taken" arrives after the lock's own timeout, on a connection still usable
        assert taken is False and time.monotonic() - started >= 3
        assert query(waiter, "SELECT 1 AS answer") == [{"answer": 1}]
    finally:
        waiter.close()


def test_a_publish_longer_than_the_idle_timeout_answers_completed_and_drops_its_staging(
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
) -> None:
    # Given day one published, and a day-two sync whose sessions the server ends after 1 s of
    # silence, and whose publish takes 3 s on its own connection (as a long UPDATE of
    # millions of rows does): the staging connection, idle meanwhile, is ended by the server
    day_one_table, day_two_table = day_one_published_and_day_two_uploaded(
        moto_endpoint, migrated_settings, tmp_path, 5_000, seed=137
    )

    def long_publish(repository: Repository) -> None:
        repository.session.execute("SELECT SLEEP(3)")

    impatient = replace(migrated_settings, idle_timeout_seconds=1)

    # When day two syncs
    service = service_on(moto_endpoint, impatient, tmp_path, hooks=SyncHooks(before_publish=long_publish))
    result = service.sync(DAY_TWO, None, SyncOptions(invocation_id="long-publish"))

    # Then it answers what it did (completed, not superseded by itself), the run history says
    # the same, the table holds day two, and no staging is left behind
    assert (result.status, result.claim_number) == ("completed", 1), result.reason
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(day_two_table)}
    runs = query(db, "SELECT status FROM upsell_signal_sync_runs WHERE sync_date = %s", (DAY_TWO,))
    assert [run["status"] for run in runs] == ["completed"]
    assert query(db, "SELECT COUNT(*) AS n FROM upsell_signal_staging WHERE sync_date = %s", (DAY_TWO,))[0]["n"] == 0
    assert query(db, "SELECT COUNT(*) AS n FROM upsell_signal_staging_progress WHERE sync_date = %s", (DAY_TWO,))[0]["n"] == 0


def test_a_clean_up_that_loses_its_connection_still_answers_completed_and_the_next_pass_clears_the_staging(
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given day one published, and day two's clean-up connection killed by the server as the clean-up starts
    day_one_table, day_two_table = day_one_published_and_day_two_uploaded(
        moto_endpoint, migrated_settings, tmp_path, 3_000, seed=139
    )

    def kill_the_clean_up_connection(repository: Repository) -> None:
        db.cursor().execute(f"KILL {repository.connection.thread_id()}")

    killed = service_on(moto_endpoint, migrated_settings, tmp_path, hooks=SyncHooks(before_clean_up=kill_the_clean_up_connection))

    # When day two syncs
    result = killed.sync(DAY_TWO, None, SyncOptions(invocation_id="killed"))

    # Then the published date is answered completed (no retry of a completed attempt), the
    # table holds day two, and the staging left behind is named in a warning
    assert (result.status, result.claim_number) == ("completed", 1), result.reason
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(day_two_table)}
    assert messages(caplog, "is published, but its staging was not dropped")
    assert query(db, "SELECT COUNT(*) AS n FROM upsell_signal_staging WHERE sync_date = %s", (DAY_TWO,))[0]["n"] > 0

    # And the date's next pass (a forced re-sync) clears it and ends with none
    again = service_on(moto_endpoint, migrated_settings, tmp_path).sync(
        DAY_TWO, None, SyncOptions(invocation_id="again", force_resync=True)
    )
    assert (again.status, again.rows_unchanged) == ("completed", day_two_table.num_rows)
    assert query(db, "SELECT COUNT(*) AS n FROM upsell_signal_staging WHERE sync_date = %s", (DAY_TWO,))[0]["n"] == 0


def test_a_compare_longer_than_the_servers_idle_timeout_is_followed_by_its_writes(
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given day one published and day two uploaded, sessions the server ends after 1 s of silence,
    # and this process slow to fingerprint the file (half a second a batch, five batches): the
    # table's side is read long before the file's ends, and the staging session waits throughout
    day_one_table, day_two_table = day_one_published_and_day_two_uploaded(
        moto_endpoint, migrated_settings, tmp_path, 5_000, seed=731
    )
    validate = change_detection.validate_batch

    def slowly(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.5)
        return validate(*args, **kwargs)

    monkeypatch.setattr(change_detection, "validate_batch", slowly)
    service = service_on(moto_endpoint, replace(migrated_settings, idle_timeout_seconds=1), work_dir_for(tmp_path, "slow"))

    # When day two syncs
    result = service.sync(DAY_TWO, None, SyncOptions(invocation_id="slow-compare"))

    # Then both sessions outlived the compare: the date completes in its first try, exactly
    assert result.status == "completed"
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(day_two_table)}
    [run] = query(db, "SELECT COUNT(*) AS runs FROM upsell_signal_sync_runs WHERE sync_date = %s", (DAY_TWO,))
    assert run["runs"] == 1


class OpenTransaction:
    """Another date's publish, as the staging table sees it: a transaction that has read the table, open for 20 s."""

    def __init__(self, connection: pymysql.Connection[Any]) -> None:
        self.connection = connection
        self._commit = threading.Timer(20, connection.commit)

    def start(self) -> None:
        self.connection.begin()
        self.connection.cursor().execute("SELECT COUNT(*) FROM upsell_signal_staging")
        self._commit.start()

    def ended(self) -> None:
        """Wait for it to commit."""
        self._commit.join()

    def close(self) -> None:
        self._commit.cancel()
        self.connection.close()


@contextmanager
def another_dates_publish(settings: DatabaseSettings) -> Iterator[OpenTransaction]:
    """An open transaction on the staging table (start it when the test needs it), closed after."""
    transaction = OpenTransaction(connect(settings))
    try:
        yield transaction
    finally:
        transaction.close()


def test_a_new_pass_behind_another_dates_open_publish_hands_over_within_the_time_left_and_the_next_run_completes(
    migrated_settings: DatabaseSettings, db: pymysql.Connection[Any], moto_endpoint: str, tmp_path: Path
) -> None:
    # Given day one published and day two uploaded, and another date's publish under way: a
    # transaction that has read the staging table and stays open for 20 s
    day_one_table, day_two_table = day_one_published_and_day_two_uploaded(
        moto_endpoint, migrated_settings, tmp_path, 3_000, seed=941
    )
    with another_dates_publish(migrated_settings) as other_publish:
        other_publish.start()

        # When day two's sync starts with 8 s left before Lambda kills it (a 1 s margin)
        deadline = time.monotonic() + 8
        service = service_on(moto_endpoint, migrated_settings, tmp_path, TIME_BUDGET_MARGIN_SECONDS="1")
        with pytest.raises(HandedOver, match="waiting for the staging table to start a pass") as handed:
            service.sync(DAY_TWO, None, SyncOptions(invocation_id="behind", seconds_left=lambda: deadline - time.monotonic()))
        took = 8 - (deadline - time.monotonic())
        other_publish.ended()

    # Then its new partition's DDL gave up before the deadline and handed the date over, instead of
    # waiting for the other publish past Lambda's kill (the server's default wait is a day)
    assert took < 8, f"it waited {took:.1f}s with 8 s left: {handed.value}"
    assert handed.value.stopped_at == f"{DAY_TWO}: waiting for the staging table to start a pass"
    # And the date's next run, the other publish over, completes it exactly
    answer = service.sync(DAY_TWO, None, SyncOptions(invocation_id="next", seconds_left=lambda: 900.0))
    assert answer.status == "completed"
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(day_two_table)}
    runs = query(db, "SELECT status FROM upsell_signal_sync_runs WHERE sync_date = %s ORDER BY id", (DAY_TWO,))
    assert [run["status"] for run in runs] == ["handed_over", "completed"]


def test_a_clean_up_behind_another_dates_open_publish_gives_up_within_the_time_left_and_answers_completed(
    migrated_settings: DatabaseSettings,
    db: pymysql.Connection[Any],
    moto_endpoint: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given day one published and day two uploaded, and, as day two's clean-up starts, another
    # date's publish under way: a transaction that has read the staging table and stays open for 20 s
    day_one_table, day_two_table = day_one_published_and_day_two_uploaded(
        moto_endpoint, migrated_settings, tmp_path, 3_000, seed=943
    )
    with another_dates_publish(migrated_settings) as other_publish:
        service = service_on(
            moto_endpoint,
            migrated_settings,
            tmp_path,
            hooks=SyncHooks(before_clean_up=lambda _: other_publish.start()),
            TIME_BUDGET_MARGIN_SECONDS="1",
        )

        # When day two syncs with 8 s left before Lambda kills it (a 1 s margin)
        deadline = time.monotonic() + 8
        result = service.sync(
            DAY_TWO, None, SyncOptions(invocation_id="behind", seconds_left=lambda: deadline - time.monotonic())
        )
        took = 8 - (deadline - time.monotonic())
        other_publish.ended()

    # Then the published date is answered completed before the deadline, its partition's drop
    # having given up instead of waiting for the other publish past Lambda's kill
    assert (result.status, result.claim_number) == ("completed", 1), result.reason
    assert took < 8, f"it took {took:.1f}s with 8 s left"
    assert table_rows(db) == {**expected_rows(day_one_table), **expected_rows(day_two_table)}
    assert messages(caplog, "is published, but its staging was not dropped")
    assert query(db, "SELECT COUNT(*) AS n FROM upsell_signal_staging WHERE sync_date = %s", (DAY_TWO,))[0]["n"] > 0

    # And the date's next pass (a forced re-sync) clears it and ends with none
    again = service_on(moto_endpoint, migrated_settings, tmp_path).sync(
        DAY_TWO, None, SyncOptions(invocation_id="again", force_resync=True)
    )
    assert (again.status, again.rows_unchanged) == ("completed", day_two_table.num_rows)
    assert query(db, "SELECT COUNT(*) AS n FROM upsell_signal_staging WHERE sync_date = %s", (DAY_TWO,))[0]["n"] == 0
