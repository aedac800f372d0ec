"""The manual payload (`aws lambda invoke --payload ...`): defaults, every field, and what is refused."""

from __future__ import annotations

import datetime as dt

import pytest

from functions.ingest.events import parse_event
from functions.shared.errors import BadEvent

TODAY = dt.date(2026, 2, 1)
PREFIX = "passive_upsell_signals/"
BUCKET = "signals-bucket"


def test_manual_payload_defaults_to_yesterday() -> None:
    # Given an empty payload, When parsed, Then it asks for yesterday, no force, no dry run
    [request] = parse_event({}, prefix=PREFIX, bucket=BUCKET, today=TODAY)
    assert (request.sync_date, request.force_resync, request.dry_run, request.trigger) == (
        dt.date(2026, 1, 31),
        False,
        False,
        "manual",
    )


def test_manual_payload_with_every_field() -> None:
    # Given a payload with every field, When parsed
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
    # Then each field is carried into the request
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
    # Given a payload that is wrong in one way, When parsed, Then BadEvent names what arrived
    with pytest.raises(BadEvent, match=message):
        parse_event(payload, prefix=PREFIX, bucket=BUCKET, today=TODAY)
