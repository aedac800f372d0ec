"""Kill switches: figures in, tripped guards out. Pure logic, no I/O."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from functions.shared.errors import BadEvent
from functions.shared.settings import GuardThresholds

GUARD_NAMES = ("reject_ratio", "row_count_drift", "empty_file", "delete_ratio", "stale_date")


@dataclass(frozen=True)
class GuardFigures:
    """What the guards look at for one date's sync."""

    sync_date: dt.date
    rows_processed: int
    rows_rejected: int
    rows_loaded: int
    previous_date: dt.date | None
    previous_rows_loaded: int | None
    newest_completed_date: dt.date | None
    manual_replay: bool  # a person's replay: the only sync an older date's stale_date stops
    delete_missing: bool
    rows_to_delete: int
    table_rows: int


@dataclass(frozen=True)
class GuardTrip:
    """One guard that refused, with a sentence and the numbers behind it."""

    guard: str
    message: str
    figures: dict[str, Any]


def validate_override_names(names: list[str]) -> frozenset[str]:
    """Refuse unknown guard names, listing the valid ones."""
    unknown = sorted(set(names) - set(GUARD_NAMES))
    if unknown:
        raise BadEvent(f"unknown guard name(s) in override_guards: {unknown}; valid names: {', '.join(GUARD_NAMES)}")
    return frozenset(names)


def evaluate_guards(figures: GuardFigures, thresholds: GuardThresholds, overridden: frozenset[str]) -> list[GuardTrip]:
    """Every guard that trips and is not overridden, in a fixed order."""
    judged = (
        _empty_file_or_reject_ratio(figures, thresholds),
        _row_count_drift(figures, thresholds),
        _delete_ratio(figures, thresholds),
        _stale_date(figures),
    )
    return [trip for trip in judged if trip is not None and trip.guard not in overridden]


def _empty_file_or_reject_ratio(figures: GuardFigures, thresholds: GuardThresholds) -> GuardTrip | None:
    if figures.rows_processed == 0:
        return GuardTrip("empty_file", "the file has no rows", {"rows_processed": 0})
    ratio = figures.rows_rejected / figures.rows_processed
    if ratio <= thresholds.max_reject_ratio:
        return None
    return GuardTrip(
        "reject_ratio",
        f"{figures.rows_rejected} of {figures.rows_processed} rows rejected ({ratio:.2%}), "
        f"limit {thresholds.max_reject_ratio:.2%}",
        {
            "rows_rejected": figures.rows_rejected,
            "rows_processed": figures.rows_processed,
            "ratio": round(ratio, 6),
            "limit": thresholds.max_reject_ratio,
        },
    )


def _row_count_drift(figures: GuardFigures, thresholds: GuardThresholds) -> GuardTrip | None:
    if not figures.previous_rows_loaded:
        return None
    drift = abs(figures.rows_loaded - figures.previous_rows_loaded) / figures.previous_rows_loaded
    if drift <= thresholds.max_row_count_drift:
        return None
    return GuardTrip(
        "row_count_drift",
        f"{figures.rows_loaded} rows against {figures.previous_rows_loaded} on {figures.previous_date} "
        f"({drift:.2%} drift), limit {thresholds.max_row_count_drift:.2%}",
        {
            "rows_loaded": figures.rows_loaded,
            "previous_rows_loaded": figures.previous_rows_loaded,
            "previous_date": str(figures.previous_date),
            "drift": round(drift, 6),
            "limit": thresholds.max_row_count_drift,
        },
    )


def _delete_ratio(figures: GuardFigures, thresholds: GuardThresholds) -> GuardTrip | None:
    if not (figures.delete_missing and figures.table_rows):
        return None
    delete_ratio = figures.rows_to_delete / figures.table_rows
    if delete_ratio <= thresholds.max_delete_ratio:
        return None
    return GuardTrip(
        "delete_ratio",
        f"{figures.rows_to_delete} of {figures.table_rows} rows would be deleted ({delete_ratio:.2%}), "
        f"limit {thresholds.max_delete_ratio:.2%}",
        {
            "rows_to_delete": figures.rows_to_delete,
            "table_rows": figures.table_rows,
            "ratio": round(delete_ratio, 6),
            "limit": thresholds.max_delete_ratio,
        },
    )


def _stale_date(figures: GuardFigures) -> GuardTrip | None:
    # Files that arrive out of date order publish by themselves, newest file winning per company
    # (publish.py); a person replaying an old date is asked to say they mean it.
    if not (figures.manual_replay and figures.newest_completed_date and figures.sync_date < figures.newest_completed_date):
        return None
    return GuardTrip(
        "stale_date",
        f"{figures.sync_date} is older than the newest completed date {figures.newest_completed_date}; a replay of it "
        "writes only companies no newer date carries (the newest file wins), override stale_date to run it",
        {"sync_date": str(figures.sync_date), "newest_completed_date": str(figures.newest_completed_date)},
    )
