"""The kill switches: figures in, tripped guards out (pure logic)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from functions.ingest.guards import GuardFigures, GuardTrip, evaluate_guards, reject_ratio_settled
from functions.ingest.sync_values import SyncOptions
from functions.shared.settings import GuardThresholds


def figures(**changes: object) -> GuardFigures:
    values: dict[str, object] = {
        "sync_date": dt.date(2026, 1, 31),
        "rows_processed": 1000,
        "rows_rejected": 0,
        "rows_loaded": 1000,
        "previous_date": dt.date(2026, 1, 30),
        "previous_rows_loaded": 1000,
        "newest_completed_date": dt.date(2026, 1, 30),
        "manual_replay": False,
        "delete_missing": False,
        "rows_to_delete": 0,
        "table_rows": 1000,
        "today": dt.date(2026, 2, 1),
    }
    values.update(changes)
    return GuardFigures(**values)  # type: ignore[arg-type]


def test_guards_pass_on_an_ordinary_day() -> None:
    # Given the figures of an ordinary day, When judged, Then nothing trips
    assert evaluate_guards(figures(), GuardThresholds(), frozenset()) == []


def test_thresholds_are_exclusive_limits() -> None:
    # Given rejects and drift exactly at the default limits, Then nothing trips
    at_limit = figures(rows_rejected=50, rows_loaded=700)
    assert evaluate_guards(at_limit, GuardThresholds(), frozenset()) == []
    # When one row more is rejected (and one fewer loaded), Then both guards trip
    over = figures(rows_rejected=51, rows_loaded=699)
    assert [trip.guard for trip in evaluate_guards(over, GuardThresholds(), frozenset())] == ["reject_ratio", "row_count_drift"]


def test_delete_ratio_only_counts_when_deleting() -> None:
    # Given a plan that would delete a fifth of the table
    many_deletions = {"rows_to_delete": 200, "table_rows": 1000}
    # When rows are kept (MISSING_ROWS=keep), Then nothing trips
    assert evaluate_guards(figures(**many_deletions), GuardThresholds(), frozenset()) == []
    # When missing rows are deleted, Then delete_ratio trips with its ratio
    trips = evaluate_guards(figures(delete_missing=True, **many_deletions), GuardThresholds(), frozenset())
    assert [trip.guard for trip in trips] == ["delete_ratio"] and trips[0].figures["ratio"] == 0.2


def test_overridden_guards_are_not_reported() -> None:
    # Given an empty file for a date older than the newest completed one: three guards trip
    stale = figures(sync_date=dt.date(2026, 1, 1), rows_processed=0, rows_loaded=0, manual_replay=True)
    assert [t.guard for t in evaluate_guards(stale, GuardThresholds(), frozenset())] == [
        "empty_file",
        "row_count_drift",
        "stale_date",
    ]
    # When all three are overridden, Then none is reported
    assert evaluate_guards(stale, GuardThresholds(), frozenset({"empty_file", "row_count_drift", "stale_date"})) == []


def test_an_older_date_arriving_by_itself_is_not_stale_but_a_persons_replay_of_it_is() -> None:
    # Given a date older than the newest completed one
    older = figures(sync_date=dt.date(2026, 1, 1))
    # When it arrives by an event (the newest file wins per company), Then stale_date does not trip
    assert evaluate_guards(older, GuardThresholds(), frozenset()) == []
    # When a person replays it, Then stale_date asks them to say they mean it
    replayed = figures(sync_date=dt.date(2026, 1, 1), manual_replay=True)
    assert [trip.guard for trip in evaluate_guards(replayed, GuardThresholds(), frozenset())] == ["stale_date"]


def test_a_date_after_tomorrow_trips_future_date_whatever_brought_it() -> None:
    # Given today 2026-02-01 (UTC): tomorrow passes, for an export dated by a clock ahead of UTC
    assert evaluate_guards(figures(sync_date=dt.date(2026, 2, 2)), GuardThresholds(), frozenset()) == []
    # When a file is dated the day after (a mistyped date, by an arrival or a person's replay)
    for manual_replay in (False, True):
        ahead = figures(sync_date=dt.date(2026, 2, 3), manual_replay=manual_replay)
        [trip] = evaluate_guards(ahead, GuardThresholds(), frozenset())
        # Then future_date refuses it, saying why, unless a person overrides it
        assert (trip.guard, trip.figures) == ("future_date", {"sync_date": "2026-02-03", "today": "2026-02-01"})
        assert "it would win over every date before it" in trip.message
        assert evaluate_guards(ahead, GuardThresholds(), frozenset({"future_date"})) == []


def settled(rows_read: int, rows_rejected: int, rows_in_file: int = 1000, **options: Any) -> GuardTrip | None:
    sync_options = SyncOptions(invocation_id="test", **options)
    return reject_ratio_settled(
        rows_read=rows_read,
        rows_rejected=rows_rejected,
        rows_in_file=rows_in_file,
        thresholds=GuardThresholds(),
        options=sync_options,
    )


def test_reject_ratio_is_settled_early_only_once_the_rejects_so_far_pass_the_limit_of_the_whole_file() -> None:
    # Given 5% of a 1,000-row file, 50 rows: 50 rejected in the first 100 may yet pass, 51 may not
    assert settled(100, 50) is None
    trip = settled(100, 51)
    assert trip is not None and trip.guard == "reject_ratio"
    assert "51 of the file's 1000 rows rejected (5.10%) already in its first 100" in trip.message
    assert "stopped early at row 100" in trip.message and trip.figures["stopped_early_at_row"] == 100
    # and as the guard itself would judge the whole file
    assert evaluate_guards(figures(rows_processed=1000, rows_rejected=51, rows_loaded=949), GuardThresholds(), frozenset())


def test_reject_ratio_is_not_settled_early_when_nothing_is_left_overridden_or_a_dry_run() -> None:
    # The whole file read: the guard judges it as ever, with its usual reason
    assert settled(1000, 1000) is None
    assert settled(0, 0) is None
    # Overridden, or a dry run (which answers every count): the file is read to its end
    assert settled(100, 100, override_guards=frozenset({"reject_ratio"})) is None
    assert settled(100, 100, dry_run=True) is None
    # Another guard overridden does not lift it
    assert settled(100, 100, override_guards=frozenset({"row_count_drift"})) is not None
