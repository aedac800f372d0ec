"""The kill switches: figures in, tripped guards out (pure logic)."""

from __future__ import annotations

import datetime as dt

from functions.ingest.guards import GuardFigures, evaluate_guards
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
