"""Guards and the manual payload: pure logic."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from functions.ingest.events import parse_event
from functions.ingest.guards import GuardFigures, evaluate_guards
from functions.ingest.staging_file import write_load_file
from functions.shared.errors import BadEvent
from functions.shared.settings import GuardThresholds, SettingsError, load_ingest_settings

TODAY = dt.date(2026, 2, 1)
PREFIX = "passive_upsell_signals/"
BUCKET = "signals-bucket"


def figures(**changes: object) -> GuardFigures:
    values: dict[str, object] = {
        "sync_date": dt.date(2026, 1, 31),
        "rows_processed": 1000,
        "rows_rejected": 0,
        "rows_loaded": 1000,
        "previous_date": dt.date(2026, 1, 30),
        "previous_rows_loaded": 1000,
        "newest_completed_date": dt.date(2026, 1, 30),
        "delete_missing": False,
        "rows_to_delete": 0,
        "table_rows": 1000,
    }
    values.update(changes)
    return GuardFigures(**values)  # type: ignore[arg-type]


def test_guards_pass_on_an_ordinary_day() -> None:
    assert evaluate_guards(figures(), GuardThresholds(), frozenset()) == []


def test_thresholds_are_exclusive_limits() -> None:
    at_limit = figures(rows_rejected=50, rows_loaded=700)
    assert evaluate_guards(at_limit, GuardThresholds(), frozenset()) == []
    over = figures(rows_rejected=51, rows_loaded=699)
    assert [trip.guard for trip in evaluate_guards(over, GuardThresholds(), frozenset())] == ["reject_ratio", "row_count_drift"]


def test_delete_ratio_only_counts_when_deleting() -> None:
    many_deletions = {"rows_to_delete": 200, "table_rows": 1000}
    assert evaluate_guards(figures(**many_deletions), GuardThresholds(), frozenset()) == []
    trips = evaluate_guards(figures(delete_missing=True, **many_deletions), GuardThresholds(), frozenset())
    assert [trip.guard for trip in trips] == ["delete_ratio"] and trips[0].figures["ratio"] == 0.2


def test_overridden_guards_are_not_reported() -> None:
    stale = figures(sync_date=dt.date(2026, 1, 1), rows_processed=0, rows_loaded=0)
    assert [t.guard for t in evaluate_guards(stale, GuardThresholds(), frozenset())] == [
        "empty_file",
        "row_count_drift",
        "stale_date",
    ]
    assert evaluate_guards(stale, GuardThresholds(), frozenset({"empty_file", "row_count_drift", "stale_date"})) == []


def test_manual_payload_defaults_to_yesterday() -> None:
    [request] = parse_event({}, prefix=PREFIX, bucket=BUCKET, today=TODAY)
    assert (request.sync_date, request.force_resync, request.dry_run, request.trigger) == (
        dt.date(2026, 1, 31),
        False,
        False,
        "manual",
    )


def test_manual_payload_with_every_field() -> None:
    [request] = parse_event(
        {
            "sync_date": "2026-01-30",
            "force_resync": True,
            "dry_run": True,
            "override_guards": ["stale_date"],
            "s3_key": "passive_upsell_signals/dt=2026-01-30/data.parquet",
        },
        prefix=PREFIX,
        bucket=BUCKET,
        today=TODAY,
    )
    assert request.sync_date == dt.date(2026, 1, 30) and request.override_guards == frozenset({"stale_date"})
    assert request.s3_key == "passive_upsell_signals/dt=2026-01-30/data.parquet"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"sync_date": "2026-02-30"}, "is not a real date"),
        ({"sync_date": "30/01/2026"}, "must be a date as YYYY-MM-DD"),
        ({"force_resync": "yes"}, "force_resync must be true or false"),
        ({"override_guards": "stale_date"}, "override_guards must be a list"),
        ({"override_guards": ["stale"]}, "valid names: reject_ratio"),
        ({"s3_key": "passive_upsell_signals/dt=../../etc/data.parquet"}, "does not match"),
        ({"s3_key": "other_prefix/dt=2026-01-30/data.parquet"}, "does not match"),
        ({"sync_date": "2026-01-31", "s3_key": "passive_upsell_signals/dt=2026-01-30/data.parquet"}, "is for 2026-01-30"),
        ({"sync_date": "2026-01-31", "colour": "blue"}, "unrecognised event"),
        ("sync please", 'unrecognised event \\(not a JSON object\\): "sync please"'),
    ],
)
def test_bad_payloads_are_refused_naming_what_arrived(payload: object, message: str) -> None:
    with pytest.raises(BadEvent, match=message):
        parse_event(payload, prefix=PREFIX, bucket=BUCKET, today=TODAY)


def test_settings_errors_name_the_setting() -> None:
    with pytest.raises(SettingsError, match="SIGNALS_BUCKET is not set"):
        load_ingest_settings({})
    with pytest.raises(SettingsError, match="MISSING_ROWS must be one of keep, delete, got 'drop'"):
        load_ingest_settings({"SIGNALS_BUCKET": "b", "MISSING_ROWS": "drop"})
    with pytest.raises(SettingsError, match="GUARD_MAX_REJECT_RATIO must be between 0 and 1"):
        load_ingest_settings({"SIGNALS_BUCKET": "b", "GUARD_MAX_REJECT_RATIO": "5"})


def test_load_file_escapes_separators_and_marks_nulls(tmp_path: Path) -> None:
    rows = pa.table({"text": pa.array(["tab\there", "line\nbreak\\", None]), "flag": pa.array([True, False, None])})
    write_load_file(rows, tmp_path / "rows.tsv")
    assert (tmp_path / "rows.tsv").read_bytes() == b"tab\\there\t1\nline\\nbreak\\\\\t0\n\\N\t\\N\n"
