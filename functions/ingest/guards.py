"""Kill switches: figures in, tripped guards out (pure logic); and the steps that ask them.

`guard_trips` gathers the figures (the file's counts, the history from the ledger) and judges
them, for a publish and a first load; `raise_on_trips` turns the trips into GuardTripped;
`stop_if_reject_ratio_settled` fails a date while its file is read, once reject_ratio trips
whatever the unread rows hold.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from functions.shared.errors import BadEvent, GuardTripped
from functions.shared.settings import GuardThresholds, IngestSettings

if TYPE_CHECKING:  # the status function imports the guard names without the repository's pyarrow
    from functions.ingest.repository import Repository
    from functions.ingest.sync_values import ClaimedSync, SyncOptions

logger = logging.getLogger("upsell_signals.ingest")

GUARD_NAMES = ("reject_ratio", "row_count_drift", "empty_file", "delete_ratio", "stale_date", "future_date")
# A daily file is dated the day it covers, at latest the day it lands; tomorrow allows for an
# export dated by a clock ahead of UTC.
FUTURE_DAYS_ALLOWED = 1


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
    today: dt.date  # UTC, when the sync (its durable execution) began


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
        _future_date(figures),
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


def reject_ratio_settled(
    *, rows_read: int, rows_rejected: int, rows_in_file: int, thresholds: GuardThresholds, options: SyncOptions
) -> GuardTrip | None:
    """The reject_ratio trip, known before the file's end: the rows rejected so far are over the limit of the whole file.

    Whatever the unread rows hold, the guard would trip at the publish: reading, validating
    and recording the rest would only cost time and rejected rows that nothing publishes.
    None (read on) when reject_ratio is overridden, for a dry run (it answers every count and
    every guard it would trip), or when nothing is left to read.
    """
    if options.dry_run or "reject_ratio" in options.override_guards or not 0 < rows_read < rows_in_file:
        return None
    limit = thresholds.max_reject_ratio
    # As the guard judges it at the end, rows_rejected only growing and rows_processed the file's rows.
    ratio = rows_rejected / rows_in_file
    if ratio <= limit:
        return None
    return GuardTrip(
        "reject_ratio",
        f"{rows_rejected} of the file's {rows_in_file} rows rejected ({ratio:.2%}) already in its first {rows_read}, "
        f"limit {limit:.2%}; stopped early at row {rows_read}: the guard trips whatever the rest holds "
        "(the rest was not read, nor its rejected rows recorded; override reject_ratio to sync the whole file)",
        {
            "rows_rejected": rows_rejected,
            "rows_read": rows_read,
            "rows_in_file": rows_in_file,
            "stopped_early_at_row": rows_read,
            "ratio": round(ratio, 6),
            "limit": limit,
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


def _future_date(figures: GuardFigures) -> GuardTrip | None:
    # The newest file wins per company, so a date ahead of its time (a mistyped year) would leave
    # every later day's rows superseded until the calendar caught up with it.
    latest = figures.today + dt.timedelta(days=FUTURE_DAYS_ALLOWED)
    if figures.sync_date <= latest:
        return None
    return GuardTrip(
        "future_date",
        f"{figures.sync_date} is after {latest} (today {figures.today} UTC, and a day for a clock ahead of UTC); published, "
        "it would win over every date before it until then (the newest file wins), override future_date to run it",
        {"sync_date": str(figures.sync_date), "today": str(figures.today)},
    )


def guard_trips(
    repository: Repository,
    claimed: ClaimedSync,
    settings: IngestSettings,
    *,
    rows_read: int,
    rows_rejected: int,
    rows_loaded: int,
    delete_missing: bool = False,
    rows_to_delete: int = 0,
    table_rows: int = 0,
) -> list[GuardTrip]:
    """The guards that trip and are not overridden: the file's counts against the history (and the plan's deletions)."""
    from functions.ingest.sync_values import today_for  # here: the status function imports this module without it

    sync_date = claimed.held.sync_date
    previous = repository.ledger.last_completed_before(sync_date)
    figures = GuardFigures(
        sync_date=sync_date,
        rows_processed=rows_read,
        rows_rejected=rows_rejected,
        rows_loaded=rows_loaded,
        previous_date=previous.sync_date if previous else None,
        previous_rows_loaded=previous.rows_loaded if previous else None,
        newest_completed_date=repository.ledger.newest_completed_date(),
        manual_replay=claimed.held.options.trigger.endswith("manual"),
        delete_missing=delete_missing,
        rows_to_delete=rows_to_delete,
        table_rows=table_rows,
        today=today_for(claimed.held.options.durable_run),
    )
    return evaluate_guards(figures, settings.guards, claimed.held.options.override_guards)


def raise_on_trips(trips: list[GuardTrip]) -> None:
    """GuardTripped naming every guard that refused, with their figures."""
    if trips:
        raise GuardTripped(
            ",".join(trip.guard for trip in trips),
            "; ".join(f"{trip.guard}: {trip.message}" for trip in trips),
            {trip.guard: trip.figures for trip in trips},
        )


def stop_if_reject_ratio_settled(
    claimed: ClaimedSync, settings: IngestSettings, rows_read: int, rows_rejected: int, rows_in_file: int
) -> None:
    """Fail the date with reject_ratio now, if the rows rejected in the first `rows_read` trip it whatever the rest holds."""
    settled = reject_ratio_settled(
        rows_read=rows_read,
        rows_rejected=rows_rejected,
        rows_in_file=rows_in_file,
        thresholds=settings.guards,
        options=claimed.held.options,
    )
    if settled is not None:
        logger.warning("stopping early, reject_ratio: %s", settled.message)
        raise_on_trips([settled])
