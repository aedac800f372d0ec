"""Recognise and parse what an invocation of the ingest function carries.

Today: the manual payload. The S3, EventBridge schedule and redrive shapes arrive
with the triggers work; each becomes a SyncRequest like this one.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from functions.ingest.guards import validate_override_names
from functions.shared.errors import BadEvent

KEY_PATTERN = re.compile(r"^(?P<prefix>[A-Za-z0-9_\-/]*?)dt=(?P<date>\d{4}-\d{2}-\d{2})/data\.parquet$")
MANUAL_FIELDS = frozenset({"sync_date", "force_resync", "dry_run", "override_guards", "s3_key"})
SHOWN_EVENT_CHARS = 300


@dataclass(frozen=True)
class SyncRequest:
    """One date to sync and how, whatever trigger asked for it."""

    sync_date: dt.date
    s3_key: str | None
    trigger: str
    force_resync: bool = False
    dry_run: bool = False
    override_guards: frozenset[str] = frozenset()


def describe_event(event: Any) -> str:
    """The start of what arrived, for error messages."""
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
    """The date a key names; the key must be <prefix>dt=YYYY-MM-DD/data.parquet exactly."""
    match = KEY_PATTERN.match(key)
    if not match or match["prefix"] != prefix:
        raise BadEvent(f"key {key!r} does not match {prefix}dt=YYYY-MM-DD/data.parquet")
    return parse_date(match["date"], "the key's dt=")


def _flag(payload: dict[str, Any], name: str) -> bool:
    value = payload.get(name, False)
    if not isinstance(value, bool):
        raise BadEvent(f"{name} must be true or false, got {value!r}")
    return value


def parse_manual_payload(payload: dict[str, Any], *, prefix: str, today: dt.date) -> SyncRequest:
    """The operator's payload: sync_date (default yesterday UTC), force_resync, dry_run, override_guards, s3_key."""
    unknown = sorted(set(payload) - MANUAL_FIELDS)
    if unknown:
        raise BadEvent(f"unknown field(s) {unknown} in the payload; accepted: {', '.join(sorted(MANUAL_FIELDS))}")
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
        force_resync=_flag(payload, "force_resync"),
        dry_run=_flag(payload, "dry_run"),
        override_guards=validate_override_names(overrides),
    )


def parse_event(event: Any, *, prefix: str, today: dt.date) -> SyncRequest:
    """Turn any accepted event into a SyncRequest; refuse anything else by name."""
    if isinstance(event, dict) and set(event) <= MANUAL_FIELDS:
        return parse_manual_payload(event, prefix=prefix, today=today)
    raise BadEvent(f"unrecognised event: {describe_event(event)}")
