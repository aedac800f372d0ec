"""Recognise and parse the ways into the ingest: S3, EventBridge, schedule, manual, redrive, status.

Every sync shape becomes one or more SyncRequests, an operator's `{"action": "status"}`
a StatusRequest; anything else is a BadEvent that names what arrived. Shapes are
recognised explicitly, never guessed.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, S3Event, SQSEvent
from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventBridgeNotificationEvent

from functions.ingest.guards import validate_override_names
from functions.shared.contract import KEY_PATTERN, key_shape
from functions.shared.errors import BadEvent

MANUAL_FIELDS = frozenset({"sync_date", "force_resync", "dry_run", "override_guards", "s3_key"})
SCHEDULE_SOURCES = frozenset({"aws.events", "aws.scheduler"})
SHOWN_EVENT_CHARS = 300


@dataclass(frozen=True)
class SyncRequest:
    """One date to sync and how, whatever trigger asked for it.

    `event` is what to put in the dead-letter queue if this request fails: the event
    itself, or for one record of a multi-record notification, that record alone.
    """

    sync_date: dt.date
    s3_key: str | None
    trigger: str
    event: Any
    force_resync: bool = False
    dry_run: bool = False
    override_guards: frozenset[str] = frozenset()
    etag: str | None = None


def describe_event(event: Any) -> str:
    """The start of what arrived, for error messages."""
    try:
        text = json.dumps(event, default=str)
    except (TypeError, ValueError):
        text = repr(event)
    return text if len(text) <= SHOWN_EVENT_CHARS else text[:SHOWN_EVENT_CHARS] + "…"


def parse_date(value: Any, field_name: str) -> dt.date:
    """A YYYY-MM-DD date that exists; anything else is a BadEvent naming it."""
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise BadEvent(f"{field_name} must be a date as YYYY-MM-DD, got {value!r}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError as error:
        raise BadEvent(f"{field_name} {value!r} is not a real date: {error}") from error


def date_from_key(key: str, prefix: str) -> dt.date:
    """The date a key names; the key must have the contract's `key_shape` exactly."""
    match = KEY_PATTERN.match(key)
    if not match or match["prefix"] != prefix:
        raise BadEvent(f"key {key!r} does not match {key_shape(prefix)}")
    return parse_date(match["date"], f"the date in key {key!r}")


def _flag(payload: dict[str, Any], name: str) -> bool:
    value = payload.get(name, False)
    if not isinstance(value, bool):
        raise BadEvent(f"{name} must be true or false, got {value!r}")
    return value


def with_default_date(event: Any, today: dt.date) -> Any:
    """A manual request that names no date, with its default (yesterday, UTC) written in; any other event as it is.

    So every run of one durable execution, and its dead letter, syncs the date its first run
    chose, even after midnight.
    """
    if isinstance(event, dict) and set(event) <= MANUAL_FIELDS and "sync_date" not in event and "s3_key" not in event:
        return {**event, "sync_date": (today - dt.timedelta(days=1)).isoformat()}
    return event


def _manual(payload: dict[str, Any], prefix: str, today: dt.date) -> SyncRequest:
    sync_date = parse_date(payload["sync_date"], "sync_date") if "sync_date" in payload else today - dt.timedelta(days=1)
    s3_key = payload.get("s3_key")
    if s3_key is not None:
        if not isinstance(s3_key, str):
            raise BadEvent(f"s3_key must be a string, got {s3_key!r}")
        key_date = date_from_key(s3_key, prefix)
        if "sync_date" in payload and key_date != sync_date:
            raise BadEvent(f"s3_key {s3_key!r} is for {key_date}, not sync_date {sync_date}")
        sync_date = key_date
    overrides = payload.get("override_guards", [])
    if not isinstance(overrides, list) or not all(isinstance(name, str) for name in overrides):
        raise BadEvent(f"override_guards must be a list of guard names, got {overrides!r}")
    return SyncRequest(
        sync_date=sync_date,
        s3_key=s3_key,
        trigger="manual",
        event=payload,
        force_resync=_flag(payload, "force_resync"),
        dry_run=_flag(payload, "dry_run"),
        override_guards=validate_override_names(overrides),
    )


def _s3_notification(event: dict[str, Any], prefix: str, bucket: str) -> list[SyncRequest]:
    requests = []
    for record in S3Event(event).records:
        if not record.event_name.startswith("ObjectCreated:"):
            raise BadEvent(f"S3 event {record.event_name!r} is not an object creation: {describe_event(record.raw_event)}")
        if record.s3.bucket.name != bucket:
            raise BadEvent(f"S3 event for bucket {record.s3.bucket.name!r}, this function reads {bucket!r}")
        # Notification keys are URL-encoded (dt%3D..., + for a space); the record gives them raw.
        key = unquote_plus(record.s3.get_object.key)
        requests.append(
            SyncRequest(
                sync_date=date_from_key(key, prefix),
                s3_key=key,
                trigger="s3",
                event={"Records": [record.raw_event]},
                etag=record.s3.get_object.etag or None,
            )
        )
    return requests


def _eventbridge_s3(event: dict[str, Any], prefix: str, bucket: str) -> SyncRequest:
    detail = S3EventBridgeNotificationEvent(event).detail
    if detail.bucket.name != bucket:
        raise BadEvent(f"S3 event for bucket {detail.bucket.name!r}, this function reads {bucket!r}")
    key = detail.object.key  # Powertools URL-decodes it
    return SyncRequest(
        sync_date=date_from_key(key, prefix),
        s3_key=key,
        trigger="eventbridge_s3",
        event=event,
        etag=detail.object.etag or None,
    )


def _schedule(event: dict[str, Any]) -> SyncRequest:
    # The day before the event's own time, not the clock's: a late delivery keeps its date.
    raw_time = EventBridgeEvent(event).time
    try:
        scheduled = dt.datetime.fromisoformat(raw_time.replace("Z", "+00:00"))
    except ValueError as error:
        raise BadEvent(f"schedule event time {raw_time!r} is not an ISO 8601 timestamp") from error
    if scheduled.tzinfo is not None:
        scheduled = scheduled.astimezone(dt.UTC)
    return SyncRequest(sync_date=scheduled.date() - dt.timedelta(days=1), s3_key=None, trigger="schedule", event=event)


def _dead_letter_body(body: dict[str, Any]) -> Any:
    """The original event inside a dead-letter message, in either of the two formats."""
    if "original_event" in body:  # sent by this function for permanent failures
        return body["original_event"]
    return body["requestPayload"]  # Lambda's on-failure destination record


def _origin(body: dict[str, Any], request: SyncRequest) -> str:
    """The trigger a redriven request first came by.

    A reconciled date is dead-lettered as a manual-shaped payload, its trigger named beside
    it: taken from the shape alone, its redrive would pass for a person's replay of an older
    date, which `stale_date` stops.
    """
    dead_letter_trigger = body.get("trigger")
    if (
        request.trigger == "manual"
        and isinstance(dead_letter_trigger, str)
        and dead_letter_trigger.removeprefix("redrive:") == "reconcile"
    ):
        return "reconcile"
    return request.trigger


def _is_dead_letter_body(event: Any) -> bool:
    return isinstance(event, dict) and (
        ("original_event" in event and "error_type" in event) or ("requestPayload" in event and "requestContext" in event)
    )


@contextmanager
def _well_formed(shape: str, event: Any) -> Iterator[None]:
    """A recognised shape with a field missing or of the wrong type is refused like any bad event.

    The Powertools data classes index and call methods on what arrived: a record without
    `s3`, a schedule whose `time` is a number, the day before 0001-01-01.
    """
    try:
        yield
    except (KeyError, TypeError, AttributeError, ValueError, OverflowError) as error:
        raise BadEvent(f"malformed {shape} ({type(error).__name__}: {error}): {describe_event(event)}") from error


def parse_event(event: Any, *, prefix: str, bucket: str, today: dt.date, redriven: bool = False) -> list[SyncRequest]:
    """Turn any accepted event into SyncRequests; refuse anything else by name."""
    if not isinstance(event, dict):
        raise BadEvent(f"unrecognised event (not a JSON object): {describe_event(event)}")
    records = event.get("Records")
    if isinstance(records, list) and records and all(isinstance(r, dict) for r in records):
        sources = {record.get("eventSource") for record in records}
        if sources == {"aws:s3"}:
            with _well_formed("S3 notification", event):
                return _s3_notification(event, prefix, bucket)
        if sources == {"aws:sqs"} and not redriven:
            requests = []
            for record in SQSEvent(event).records:
                with _well_formed("SQS event", event):
                    message_id, body_text = record.message_id, record.body
                shown = body_text[:200] if isinstance(body_text, str) else body_text
                try:
                    body = record.json_body
                except RecursionError as error:
                    raise BadEvent(f"SQS message {message_id} is nested too deeply to read: {shown!r}") from error
                except (ValueError, TypeError) as error:
                    raise BadEvent(f"SQS message {message_id} is not JSON: {shown!r}") from error
                requests += parse_event(body, prefix=prefix, bucket=bucket, today=today)
            return requests
    if _is_dead_letter_body(event) and not redriven:
        inner = parse_event(_dead_letter_body(event), prefix=prefix, bucket=bucket, today=today, redriven=True)
        return [replace(request, trigger=f"redrive:{_origin(event, request)}") for request in inner]
    if event.get("source") == "aws.s3" and event.get("detail-type") == "Object Created":
        with _well_formed("EventBridge S3 event", event):
            return [_eventbridge_s3(event, prefix, bucket)]
    if event.get("source") in SCHEDULE_SOURCES and event.get("detail-type") == "Scheduled Event":
        with _well_formed("Scheduled Event", event):
            return [_schedule(event)]
    if set(event) <= MANUAL_FIELDS:
        return [_manual(event, prefix, today)]
    raise BadEvent(f"unrecognised event: {describe_event(event)}")


def is_s3_test_event(event: Any) -> bool:
    """S3 sends one s3:TestEvent when a notification is configured; it carries no file."""
    return isinstance(event, dict) and event.get("Event") == "s3:TestEvent" and event.get("Service") == "Amazon S3"


def split_records(event: Any) -> list[Any]:
    """A notification of several S3 records, or an SQS event of several messages, as one event per record.

    So a bad record or message refuses only itself. Anything else is returned whole, as the one event it is.
    """
    records = event.get("Records") if isinstance(event, dict) else None
    if isinstance(records, list) and len(records) > 1 and all(isinstance(record, dict) for record in records):
        sources = {record.get("eventSource") for record in records}
        if len(sources) == 1 and sources <= {"aws:s3", "aws:sqs"}:
            return [{**event, "Records": [record]} for record in records]
    return [event]
