"""The values one sync hands between its steps: the options in, the held date, the claimed sync, the answers out."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from functions.ingest.claim_rules import ClaimOutcome
from functions.ingest.s3_source import ObjectInfo
from functions.ingest.time_budget import TimeBudget


@dataclass(frozen=True, kw_only=True)
class DurableRun:
    """One run of a durable execution (functions/ingest/continuation.py), as its claims name it."""

    holder_token: str  # the execution's own: every run of it resumes the execution's claims at once
    execution_arn: str  # for people reading the ledger: `aws lambda get-durable-execution --durable-execution-arn`
    number: int  # 1 for the execution's first run, 2 for the run after its first hand-over, ...
    # The UTC date the execution began on (checkpointed): every run reads an event as of that day, so a
    # request that names no date (yesterday's) means the same date after midnight, nested in a redrive too.
    started_on: dt.date | None = None


def today_for(run: DurableRun | None) -> dt.date:
    """The UTC day a sync goes by: its durable execution's first day, or now outside one."""
    return run.started_on if run is not None and run.started_on is not None else dt.datetime.now(dt.UTC).date()


@dataclass(frozen=True, kw_only=True)
class SyncOptions:
    """How to run one sync, as the trigger asked."""

    invocation_id: str
    trigger: str = "manual"
    force_resync: bool = False
    dry_run: bool = False
    override_guards: frozenset[str] = frozenset()
    # The durable run this sync is part of; None (a plain invocation): a fresh holder token per claim.
    durable_run: DurableRun | None = None
    # Seconds until the function is killed (Lambda's context); None where nothing will kill it.
    seconds_left: Callable[[], float] | None = field(default=None, compare=False)
    # What a fresh run of the function has: the time left when the invocation began (its
    # timeout, near enough). None: what seconds_left says when the sync starts.
    run_seconds: float | None = None


@dataclass(frozen=True, kw_only=True)
class ClaimAnswer:
    """The answer for a date this execution did not sync: skipped, or in progress under another holder."""

    sync_date: dt.date
    status: Literal["skipped", "in_progress"]
    s3_key: str
    claim_number: int  # the date's claim this answer was given under (its `attempt` in the ledger)
    reason: str | None
    duration_ms: int | None = None  # only once the date was held: the time until another execution took it

    def as_dict(self) -> dict[str, Any]:
        """What the handler returns (`attempt` is the claim number's name in the contract)."""
        answer: dict[str, Any] = {"sync_date": self.sync_date.isoformat(), "status": self.status, "s3_key": self.s3_key}
        answer["attempt"] = self.claim_number
        if self.duration_ms is not None:
            answer["duration_ms"] = self.duration_ms
        if self.reason:
            answer["reason"] = self.reason
        return answer


@dataclass(frozen=True, kw_only=True)
class SyncResult:
    """A sync that ran to its end: published (completed), or counted and left (dry_run)."""

    sync_date: dt.date
    status: Literal["completed", "dry_run"]
    s3_key: str
    claim_number: int
    rows_processed: int
    rows_inserted: int
    rows_updated: int
    rows_unchanged: int
    rows_rejected: int
    rows_deleted: int
    rows_resumed: int
    duration_ms: int
    # Rows a newer date carries, left as it wrote them; None for a first load (no newer date can exist then).
    rows_superseded: int | None = None
    reason: str | None = None
    guards_tripped: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int | None]:
        return {
            "rows_processed": self.rows_processed,
            "rows_inserted": self.rows_inserted,
            "rows_updated": self.rows_updated,
            "rows_unchanged": self.rows_unchanged,
            "rows_rejected": self.rows_rejected,
            "rows_deleted": self.rows_deleted,
            "rows_superseded": self.rows_superseded,
            "rows_resumed": self.rows_resumed,
        }

    def as_dict(self) -> dict[str, Any]:
        """What the handler returns and the logs and metrics report (`attempt` is the claim number's name there)."""
        answer: dict[str, Any] = {"sync_date": self.sync_date.isoformat(), "status": self.status, "s3_key": self.s3_key}
        answer.update({name: value for name, value in self.counts().items() if value is not None})
        answer["attempt"] = self.claim_number
        answer["duration_ms"] = self.duration_ms
        if self.reason:
            answer["reason"] = self.reason
        if self.guards_tripped:
            answer["guards_tripped"] = self.guards_tripped
        return answer


SyncAnswer = SyncResult | ClaimAnswer  # what `SyncService.sync` returns


@dataclass(frozen=True, kw_only=True)
class HeldDate:
    """A date this execution claimed: what every write is fenced by and every record names."""

    sync_date: dt.date
    s3_key: str
    options: SyncOptions
    claim: ClaimOutcome
    run_id: int
    holder_token: str  # this execution's fence on the date: every write checks it
    lease_seconds: int
    started: float  # time.monotonic() when the sync of this object began

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)


@dataclass(frozen=True, kw_only=True)
class ClaimedSync:
    """What every step of a claimed sync works from: the held date, the object it syncs, the time it has."""

    held: HeldDate
    info: ObjectInfo
    budget: TimeBudget
    # An in-process retry (retry.py), not the run's first attempt: it has less than a fresh run's time.
    retried: bool = False
