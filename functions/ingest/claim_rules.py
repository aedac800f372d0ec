"""Who may take a date: the claim's decision, apart from the SQL that reads and writes it.

A date is held by one execution at a time, named by a token of its own (never the
Lambda request id, which async retries and duplicated deliveries reuse). The newest
file wins: a real sync of another object takes the date from a live holder, and so does
a real sync from a dry run; the old holder finds out at its next write and stops.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from functions.shared.errors import TransientError, is_permanent_error_name

ClaimKind = Literal["claimed", "skipped", "in_progress"]
LEASE_LIVE = "lease_live"  # computed by the server beside the row: lease_expires_at > NOW()
ROW_LOCKED = "row_locked"  # the row was read without its lock, which a holder's transaction has
LAST_ERROR_TYPE = "last_error_type"  # of a failed date: its last failed run's error type, read beside the row
# The triggers that deliver a file's arrival, or look for it (the 06:00 run, its reconcile of the days before
# included): at least once, so again after a failure.
ARRIVAL_TRIGGERS = frozenset({"s3", "eventbridge_s3", "schedule", "reconcile"})


@dataclass(frozen=True, kw_only=True)
class ClaimRequest:
    """One execution asking for a date."""

    sync_date: dt.date
    s3_key: str
    etag: str | None  # None: the object is missing (the failure is recorded under the claim)
    invocation_id: str  # the Lambda request id, for people reading the ledger
    holder_token: str  # this execution's own token: the fence every write checks
    trigger: str
    force_resync: bool
    dry_run: bool
    durable_execution_arn: str | None = None  # the durable execution asking, and which of its runs: for the status
    durable_run: int | None = None


@dataclass(frozen=True)
class ClaimOutcome:
    """The result of trying to claim a date."""

    kind: ClaimKind
    claim_number: int  # the date's claims counted, dry runs included (the ledger's `attempt` column)
    reason: str | None = None
    previous: dict[str, Any] | None = None  # the metadata row before this claim, for a dry run to restore
    own_claim: bool = False  # the date was already held under the request's token: resumed, not taken


def decide_claim(current: Mapping[str, Any], request: ClaimRequest) -> ClaimOutcome:
    """Claim, skip or answer in progress, given the date's metadata row as it stands.

    Raises TransientError when the answer is to take the date but the row is locked by
    its holder's open transaction: the caller retries rather than waits or drops the event.
    """
    claim_number = int(current["attempt"])
    holder = f"attempt {claim_number} ({current['workflow_id']})"
    previous = {name: value for name, value in current.items() if name not in (LEASE_LIVE, ROW_LOCKED, LAST_ERROR_TYPE)}
    if current["status"] == "started":
        if current["holder_token"] == request.holder_token and _same_object(current, request):
            # Our own claim: its commit was retried in-process, or a later run of the same durable execution
            # resumes it (after a hand-over, recorded or not, or a kill), at once, whatever its lease.
            return ClaimOutcome("claimed", claim_number, "resumes its own claim", own_claim=True)
        if request.dry_run:
            return ClaimOutcome("in_progress", claim_number, f"{holder} holds the date; a dry run never takes a date over")
        if not current[LEASE_LIVE]:
            reason = f"takes over from {holder}, whose lease ran out at {current['lease_expires_at']:%Y-%m-%d %H:%M:%S} UTC"
        elif current["holder_dry_run"]:
            reason = f"a real sync takes the date over from the dry run {holder}"
        elif request.etag is not None and (request.etag, request.s3_key) != (current["s3_etag"], current["s3_key"]):
            reason = (
                f"the object {request.s3_key} (ETag {request.etag}) supersedes the one {holder} is syncing "
                f"({current['s3_key']}, ETag {current['s3_etag']})"
            )
        else:
            return ClaimOutcome(
                "in_progress",
                claim_number,
                f"{holder} holds the date until {current['lease_expires_at']:%Y-%m-%d %H:%M:%S} UTC, syncing the same object",
            )
    elif current["status"] == "completed" and not request.force_resync and request.etag in (None, current["completed_etag"]):
        return ClaimOutcome(
            "skipped",
            claim_number,
            f"already completed at {current['completed_at']:%Y-%m-%d %H:%M:%S} UTC from the same object "
            f"(ETag {current['completed_etag']}); use force_resync to sync it again",
        )
    elif _failed_for_good_on(current, request):
        return ClaimOutcome(
            "skipped",
            claim_number,
            f"failed on this same object ({current[LAST_ERROR_TYPE]}: {str(current['error_message'])[:200]}), which "
            "retrying cannot fix: left to its dead letter. A corrected file syncs by itself; once the cause is fixed, "
            "a replay (override_guards for a guard) or the dead letter's redrive runs it",
        )
    else:
        reason = None
    if current.get(ROW_LOCKED):
        raise TransientError(
            f"{request.sync_date}: the date's row is locked by its holder's open transaction; claiming again shortly"
        )
    return ClaimOutcome("claimed", claim_number, reason, previous)


def _failed_for_good_on(current: Mapping[str, Any], request: ClaimRequest) -> bool:
    """A repeated delivery of an arrival (or the 06:00 look for it) meeting a permanent failure an arrival met on that object.

    The 06:00 run's reconcile counts as an arrival both ways: it syncs a date whose event was lost under
    the rules its arrival would have met, so its failure is the one dead letter a repeated arrival keeps.

    Syncing it again would fail it again and dead-letter it a second time; a person's replay,
    a redrive and a forced re-sync still run. A failure a person's replay met (a guard only a
    replay meets, such as stale_date) says nothing of what the arrival meets, so it runs; nor is
    future_date for good: the same file passes once its date is near.
    """
    return (
        request.trigger in ARRIVAL_TRIGGERS
        and not request.force_resync
        and request.etag is not None
        and failed_for_good_by_an_arrival(current, request.etag)
    )


def failed_for_good_by_an_arrival(current: Mapping[str, Any], etag: str) -> bool:
    """The date failed for good on the object `etag` under an arrival: another arrival (or reconcile) would fail it again.

    `current`: its metadata row with status, s3_etag, trigger_source, error_message and LAST_ERROR_TYPE.
    """
    return (
        current["status"] == "failed"
        and current["s3_etag"] == etag
        and not _tripped_future_date(current)
        and current.get("trigger_source") in ARRIVAL_TRIGGERS
        and is_permanent_error_name(current.get(LAST_ERROR_TYPE))
    )


def _tripped_future_date(current: Mapping[str, Any]) -> bool:
    """The date's last failure was a tripped guard, future_date among them ("guard a,future_date tripped: ...")."""
    message = str(current.get("error_message") or "")
    if current.get(LAST_ERROR_TYPE) != "GuardTripped" or not message.startswith("guard "):
        return False
    return "future_date" in message.removeprefix("guard ").split(" ", 1)[0].split(",")


def _same_object(current: Mapping[str, Any], request: ClaimRequest) -> bool:
    """The request is for the object the claim was taken for (or for a missing one): its staging is resumable."""
    return request.etag is None or (request.etag, request.s3_key) == (current["s3_etag"], current["s3_key"])
