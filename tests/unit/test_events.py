"""Event shapes as AWS sends them, parsed without AWS."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from functions.ingest.events import is_s3_test_event, parse_event, with_default_date
from functions.shared.errors import BadEvent

EVENTS = Path(__file__).resolve().parents[2] / "events"
TODAY = dt.date(2026, 11, 23)


def aws_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def parse(event: Any) -> list[Any]:
    return parse_event(event, prefix="passive_upsell_signals/", bucket="signals-bucket", today=TODAY)


def test_s3_record_key_is_decoded_and_its_etag_kept() -> None:
    # Given an S3 notification as AWS sends it (its key URL-encoded); When it is parsed
    [request] = parse(aws_event("s3-notification.json"))
    # Then the request names the decoded key, its date and trigger, and keeps the object's ETag
    assert (request.sync_date, request.s3_key, request.trigger) == (
        dt.date(2026, 1, 30),
        "passive_upsell_signals/dt=2026-01-30/data.parquet",
        "s3",
    )
    assert request.etag == "5d41402abc4b2a76b9719d911017c592-6"


def test_each_record_of_a_notification_is_its_own_request_with_its_own_event() -> None:
    # Given a notification carrying two records, for two dates
    event = aws_event("s3-notification.json")
    second = copy.deepcopy(event["Records"][0])
    second["s3"]["object"]["key"] = "passive_upsell_signals/dt%3D2026-01-31/data.parquet"
    event["Records"].append(second)
    # When it is parsed
    requests = parse(event)
    # Then each record is a request of its own, carrying only its own record as its event
    assert [r.sync_date.isoformat() for r in requests] == ["2026-01-30", "2026-01-31"]
    assert requests[1].event == {"Records": [second]}


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda r: r.update(eventName="ObjectRemoved:Delete"), "is not an object creation"),
        (lambda r: r["s3"]["bucket"].update(name="someone-elses"), "this function reads 'signals-bucket'"),
        (lambda r: r["s3"]["object"].update(key="passive_upsell_signals/dt%3D2026-01-30/_SUCCESS"), "does not match"),
        (lambda r: r["s3"]["object"].update(key="passive_upsell_signals/dt%3D2026-02-31/data.parquet"), "not a real date"),
        # Another object than the day's file: its name only begins with it
        (lambda r: r["s3"]["object"].update(key="passive_upsell_signals/dt%3D2026-01-30/data.parquet%0A"), "does not match"),
    ],
)
def test_s3_records_outside_the_contract_are_refused(change: Any, says: str) -> None:
    # Given a notification whose record breaks the contract one way (kind, bucket, key, date)
    event = aws_event("s3-notification.json")
    change(event["Records"][0])
    # When it is parsed, Then it is refused, saying what is wrong
    with pytest.raises(BadEvent, match=says):
        parse(event)


def test_schedule_from_eventbridge_scheduler_and_with_an_offset() -> None:
    # Given a scheduled event from EventBridge Scheduler whose time carries a UTC offset
    event = aws_event("schedule.json") | {"source": "aws.scheduler", "time": "2026-03-01T07:00:00+01:00"}
    # When it is parsed
    [request] = parse(event)
    # Then it syncs the day before the event's own time in UTC, as the schedule, with no key
    assert (request.sync_date, request.trigger, request.s3_key) == (dt.date(2026, 2, 28), "schedule", None)


def test_redrive_of_our_own_dead_letter_message() -> None:
    # Given a dead-letter message of ours, carrying the event that failed
    body = {"original_event": {"sync_date": "2026-01-30"}, "error_type": "CorruptFile", "error_message": "x"}
    # When it is sent back and parsed
    [request] = parse(body)
    # Then the event it carries is replayed, marked as a redrive
    assert (request.sync_date, request.trigger) == (dt.date(2026, 1, 30), "redrive:manual")


def test_a_dead_letter_inside_a_dead_letter_is_refused() -> None:
    # Given a dead-letter message whose carried event is itself a dead-letter message
    inner = {"original_event": {"sync_date": "2026-01-30"}, "error_type": "BadEvent"}
    # When it is parsed, Then it is refused rather than unwrapped twice
    with pytest.raises(BadEvent, match="unrecognised event"):
        parse({"original_event": inner, "error_type": "BadEvent"})


def test_s3_test_event_is_recognised() -> None:
    # Given the test event S3 sends when a notification is configured
    event = {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2026-01-30T10:00:00.000Z",
        "Bucket": "signals-bucket",
        "RequestId": "5582815E1AEA5ADF",
        "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
    }
    # When it is checked, Then it is recognised as one, and a scheduled event is not
    assert is_s3_test_event(event) and not is_s3_test_event(aws_event("schedule.json"))


def test_a_long_unknown_event_is_named_but_cut() -> None:
    # Given an unknown event of 5,000 characters; When it is parsed
    with pytest.raises(BadEvent) as refused:
        parse({"detail-type": "Something Else", "padding": "x" * 5_000})
    # Then the refusal names what arrived, cut short
    assert "Something Else" in str(refused.value) and len(str(refused.value)) < 400


@pytest.mark.parametrize(
    ("event", "pinned"),
    [
        ({}, {"sync_date": "2026-01-30"}),
        ({"force_resync": True}, {"force_resync": True, "sync_date": "2026-01-30"}),
        ({"sync_date": "2026-01-02"}, {"sync_date": "2026-01-02"}),
        ({"s3_key": "passive_upsell_signals/dt=2026-01-02/data.parquet"}, {"s3_key": "passive_upsell_signals/dt=2026-01-02/data.parquet"}),
        ({"action": "status"}, {"action": "status"}),
        ({"Records": []}, {"Records": []}),
        ("not an object", "not an object"),
    ],
)
def test_only_a_manual_request_naming_no_date_gets_its_default_date_written_in(event: Any, pinned: Any) -> None:
    assert with_default_date(event, dt.date(2026, 1, 31)) == pinned


@pytest.mark.parametrize(
    ("time", "day_before_in_utc"),
    [("2026-03-01T00:30:00+01:00", dt.date(2026, 2, 27)), ("2026-02-28T23:30:00-01:00", dt.date(2026, 2, 28))],
)
def test_a_schedule_time_whose_offset_crosses_midnight_is_dated_in_utc(time: str, day_before_in_utc: dt.date) -> None:
    # Given a scheduled event whose local date is not its UTC date
    event = aws_event("schedule.json") | {"source": "aws.scheduler", "time": time}
    # When it is parsed, Then it syncs the day before its UTC date, not before its local one
    [request] = parse(event)
    assert request.sync_date == day_before_in_utc
