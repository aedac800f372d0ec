"""The values one sync hands between its steps: the options in, the held date, the claimed attempt, the result out."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from functions.ingest.claim_rules import ClaimOutcome
from functions.ingest.s3_source import ObjectInfo
from functions.ingest.time_budget import TimeBudget

SyncStatus = Literal["completed", "skipped", "in_progress", "dry_run", "failed"]


@dataclass(frozen=True, kw_only=True)
class SyncOptions:
    """How to run one sync, as the trigger asked."""

    invocation_id: str
    trigger: str = "manual"
    force_resync: bool = False
    dry_run: bool = False
    override_guards: frozenset[str] = frozenset()
    # Seconds until the function is killed (Lambda's context); None where nothing will kill it.
    seconds_left: Callable[[], float] | None = field(default=None, compare=False)


@dataclass(frozen=True, kw_only=True)
class SyncResult:
    """What the handler returns and the logs and metrics report."""

    sync_date: dt.date
    status: SyncStatus
    s3_key: str
    attempt: int | None = None
    rows_processed: int | None = None
    rows_inserted: int | None = None
    rows_updated: int | None = None
    rows_unchanged: int | None = None
    rows_rejected: int | None = None
    rows_deleted: int | None = None
    rows_superseded: int | None = None  # rows a newer date carries: left as it wrote them
    rows_resumed: int | None = None
    duration_ms: int | None = None
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
        answer: dict[str, Any] = {"sync_date": self.sync_date.isoformat(), "status": self.status, "s3_key": self.s3_key}
        answer.update({name: value for name, value in self.counts().items() if value is not None})
        if self.attempt is not None:
            answer["attempt"] = self.attempt
        if self.duration_ms is not None:
            answer["duration_ms"] = self.duration_ms
        if self.reason:
            answer["reason"] = self.reason
        if self.guards_tripped:
            answer["guards_tripped"] = self.guards_tripped
        return answer


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


@dataclass(kw_only=True)
class ClaimedAttempt:
    """The held date and the object it syncs; the two mutable fields outlive in-process retries."""

    held: HeldDate
    info: ObjectInfo
    budget: TimeBudget
    # Set only once the download is complete and verified: a retry after a broken one downloads again.
    local_path: Path | None = None
    direct_load_failed: bool = False  # a first load failed: the retry stages, so that it can resume
