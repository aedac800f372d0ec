"""Operator actions the functions answer besides a sync: `{"action": "status", ...}`, parsed and bounded."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from functions.ingest.events import parse_date
from functions.shared.errors import BadEvent

ACTIONS = ("status",)
STATUS_FIELDS = frozenset({"action", "sync_date", "days", "rejects"})
STATUS_DEFAULT_DAYS = 14
STATUS_MAX_DAYS = 3_660
STATUS_DEFAULT_REJECTS = 50
# A listed reject carries up to five text values of 1 KiB: the answer lists as many of these as
# fit in what Lambda returns (status/report.py), and says so.
STATUS_MAX_REJECTS = 1_000


@dataclass(frozen=True)
class StatusRequest:
    """An operator asks what happened: the last `days` dates, or one date's runs and first `rejects` rejected rows."""

    sync_date: dt.date | None = None
    days: int = STATUS_DEFAULT_DAYS
    rejects: int = STATUS_DEFAULT_REJECTS


def _bounded_count(payload: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = payload.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BadEvent(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return value


def parse_action(event: Any) -> StatusRequest | None:
    """The operator action an event asks for (`{"action": "status", ...}`); None when it is not an action.

    An unknown action, or a field the action does not take, is a BadEvent naming it.
    """
    if not isinstance(event, dict) or "action" not in event:
        return None
    action = event["action"]
    if action not in ACTIONS:
        raise BadEvent(
            f"unknown action {action!r}: the ingest answers {', '.join(map(repr, ACTIONS))} "
            "(a sync request has no action field)"
        )
    unknown = set(event) - STATUS_FIELDS
    if unknown:
        raise BadEvent(
            f"a status request takes {', '.join(sorted(STATUS_FIELDS))}; unknown field(s): {', '.join(sorted(unknown))}"
        )
    return StatusRequest(
        sync_date=parse_date(event["sync_date"], "sync_date") if "sync_date" in event else None,
        days=_bounded_count(event, "days", STATUS_DEFAULT_DAYS, 1, STATUS_MAX_DAYS),
        rejects=_bounded_count(event, "rejects", STATUS_DEFAULT_REJECTS, 0, STATUS_MAX_REJECTS),
    )
