"""The daily run's second look: recent dates whose file differs from what completed, or never completed.

Lambda may drop an asynchronous event, or age it out after its maximum event age ("events
might also be deleted from the queue without being sent to the function": Lambda Developer
Guide, "How Lambda handles errors and retries with asynchronous invocation"). Without this,
a correction to an older date whose event was lost would never be synced.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from functions.ingest.claim_rules import LAST_ERROR_TYPE, LEASE_LIVE, failed_for_good_by_an_arrival
from functions.ingest.s3_source import ObjectInfo
from functions.shared.errors import MissingObject, is_transient_error_name

logger = logging.getLogger("upsell_signals.ingest")


@dataclass(frozen=True)
class DateToReconcile:
    """A recent date the daily run syncs, and why."""

    sync_date: dt.date
    s3_key: str
    reason: str


def reconcile_reason(state: Mapping[str, Any] | None, etag: str, holder_token: str | None = None) -> str | None:
    """Why a date whose object has `etag` must be synced again, given its metadata row; None when it need not.

    `holder_token`: the durable execution running this reconcile, whose own claims it resumes.
    A date that failed for good on this very object under an arrival is left to its dead letter
    (syncing it again every morning would only fail it again), by the rule a repeated arrival
    meets (claim_rules.py). It is synced when it failed for a passing reason (a TransientError:
    the database away through every retry, a lock held too long), under a person's replay (a
    guard only a replay meets, such as stale_date, says nothing of what its arrival meets), or
    on future_date (the same file passes once its date is near).
    """
    if state is None:
        return "never synced: its event never arrived"
    status = state["status"]
    if status == "completed":
        completed = state["completed_etag"]
        return None if completed == etag else f"the object changed since it completed (ETag {completed} -> {etag})"
    if status == "started":
        return _held_reason(state, holder_token)
    return _failed_reason(state, etag)


def _failed_reason(state: Mapping[str, Any], etag: str) -> str | None:
    if state["s3_etag"] != etag:
        return f"a new object (ETag {etag}) since it failed on ETag {state['s3_etag']}"
    if failed_for_good_by_an_arrival(state, etag) or state[LAST_ERROR_TYPE] is None:
        return None  # (no error recorded: its durable execution stopped making progress and dead-lettered it)
    if is_transient_error_name(state[LAST_ERROR_TYPE]):
        return f"it failed for a passing reason ({state[LAST_ERROR_TYPE]}) and never completed"
    return (
        f"it failed on this object under {state['trigger_source']} ({state[LAST_ERROR_TYPE]}), "
        "which says nothing of what its arrival meets, and never completed"
    )


def _held_reason(state: Mapping[str, Any], holder_token: str | None) -> str | None:
    if holder_token is not None and state["holder_token"] == holder_token:
        return "held by this execution, whose earlier run stopped without recording a hand-over: resuming it"
    return None if state[LEASE_LIVE] else "stranded: its holder stopped without a word and no retry came"


def dates_to_reconcile(
    states: Mapping[dt.date, Mapping[str, Any]],
    first: dt.date,
    days: int,
    describe: Callable[[dt.date], ObjectInfo | MissingObject],
    holder_token: str | None = None,
) -> list[DateToReconcile]:
    """Of the `days` dates from `first` on, those to sync again, each with why; what was found is logged."""
    found = []
    for offset in range(days):
        sync_date = first + dt.timedelta(days=offset)
        described = describe(sync_date)
        if isinstance(described, MissingObject):
            continue  # no file for that date (and if one completed, its rows stay)
        reason = reconcile_reason(states.get(sync_date), described.etag, holder_token)
        if reason is not None:
            found.append(DateToReconcile(sync_date, described.key, reason))
    logger.info(
        "reconciled %s to %s: %d of %d dates to sync",
        first,
        first + dt.timedelta(days=days - 1),
        len(found),
        days,
        extra={"dates_to_reconcile": {str(date.sync_date): date.reason for date in found}},
    )
    return found
