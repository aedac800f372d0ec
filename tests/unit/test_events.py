"""Event shapes as AWS sends them, parsed without AWS."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from functions.ingest.events import is_s3_test_event, parse_event
from functions.shared.errors import BadEvent

EVENTS = Path(__file__).resolve().parents[2] / "events"
TODAY = dt.date(2026, 11, 23)


def aws_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def parse(event: Any) -> list[Any]:
    return parse_event(event, prefix="passive_upsell_signals/", bucket="signals-bucket", today=TODAY)


def test_s3_record_key_is_decoded_and_its_etag_kept() -> None:
    [request] = parse(aws_event("s3-notification.json"))
    assert (request.sync_date, request.s3_key, request.trigger) == (
        dt.date(2026, 1, 30),
        "passive_upsell_signals/dt=2026-01-30/data.parquet",
        "s3",
    )
    assert request.etag == "5d41402abc4b2a76b9719d911017c592-6"


def test_each_record_of_a_notification_is_its_own_request_with_its_own_event() -> None:
    event = aws_event("s3-notification.json")
    second = copy.deepcopy(event["Records"][0])
    second["s3"]["object"]["key"] = "passive_upsell_signals/dt%3D2026-01-31/data.parquet"
    event["Records"].append(second)
    requests = parse(event)
    assert [r.sync_date.isoformat() for r in requests] == ["2026-01-30", "2026-01-31"]
    assert requests[1].event == {"Records": [second]}


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda r: r.update(eventName="ObjectRemoved:Delete"), "is not an object creation"),
        (lambda r: r["s3"]["bucket"].update(name="someone-elses"), "this function reads 'signals-bucket'"),
        (lambda r: r["s3"]["object"].update(key="passive_upsell_signals/dt%3D2026-01-30/_SUCCESS"), "does not match"),
        (lambda r: r["s3"]["object"].update(key="passive_upsell_signals/dt%3D2026-02-31/data.parquet"), "not a real date"),
    ],
)
def test_s3_records_outside_the_contract_are_refused(change: Any, says: str) -> None:
    event = aws_event("s3-notification.json")
    change(event["Records"][0])
    with pytest.raises(BadEvent, match=says):
        parse(event)


def test_schedule_from_eventbridge_scheduler_and_with_an_offset() -> None:
    event = aws_event("schedule.json") | {"source": "aws.scheduler", "time": "2026-03-01T07:00:00+01:00"}
    [request] = parse(event)
    assert (request.sync_date, request.trigger, request.s3_key) == (dt.date(2026, 2, 28), "schedule", None)


def test_redrive_of_our_own_dead_letter_message() -> None:
    body = {"original_event": {"sync_date": "2026-01-30"}, "error_type": "CorruptFile", "error_message": "x"}
    [request] = parse(body)
    assert (request.sync_date, request.trigger) == (dt.date(2026, 1, 30), "redrive:manual")


def test_a_dead_letter_inside_a_dead_letter_is_refused() -> None:
    inner = {"original_event": {"sync_date": "2026-01-30"}, "error_type": "BadEvent"}
    with pytest.raises(BadEvent, match="unrecognised event"):
        parse({"original_event": inner, "error_type": "BadEvent"})


def test_s3_test_event_is_recognised() -> None:
    event = {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2026-01-30T10:00:00.000Z",
        "Bucket": "signals-bucket",
        "RequestId": "5582815E1AEA5ADF",
        "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
    }
    assert is_s3_test_event(event) and not is_s3_test_event(aws_event("schedule.json"))


def test_a_long_unknown_event_is_named_but_cut() -> None:
    with pytest.raises(BadEvent) as refused:
        parse({"detail-type": "Something Else", "padding": "x" * 5_000})
    assert "Something Else" in str(refused.value) and len(str(refused.value)) < 400
