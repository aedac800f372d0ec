"""How long a migration may wait for others, so that it fails plainly inside the function's timeout.

MariaDB DDL waits on metadata locks: behind any open transaction that used the table, for
`lock_wait_timeout` seconds (default one day), while every statement that arrives after it
queues behind it (MariaDB KB, "Metadata Locking"). A migration therefore bounds each statement's
wait (`lock_wait_timeout` and, for row locks, `innodb_lock_wait_timeout`), retries a timed-out
statement a few times, and never starts a wait that the run's deadline cannot cover.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

# Left of the migrate function's timeout for the answer to reach the provider framework.
DEADLINE_MARGIN_SECONDS = 20


@dataclass(frozen=True, kw_only=True)
class MigrationWaits:
    """Bounds of one run's waits; `deadline` (time.monotonic()) is when it must have given up."""

    # Each statement's wait for a metadata or row lock; readers queue behind a waiting DDL this long at most.
    statement_lock_wait_seconds: int = 15
    statement_attempts: int = 3
    retry_backoff_seconds: float = 2.0
    migration_lock_seconds: int = 60  # another migrator (two deploys at once)
    publish_lock_seconds: int = 90  # the ingest's publish of a day (tens of seconds at 1M rows)
    deadline: float | None = None

    def within(self, seconds: float) -> MigrationWaits:
        """The same bounds, with a deadline `seconds` from now (the time left in the invocation, less a margin)."""
        return replace(self, deadline=time.monotonic() + max(0.0, seconds - DEADLINE_MARGIN_SECONDS))

    def seconds_left(self) -> float:
        return math.inf if self.deadline is None else self.deadline - time.monotonic()

    def lock_timeout(self, bound_seconds: int) -> int:
        """A named lock's wait: its own bound, cut to the time left (0 when none is)."""
        left = self.seconds_left()
        return bound_seconds if left >= bound_seconds else max(0, math.floor(left))

    def statement_wait(self) -> int:
        """The next statement's lock wait: the bound, cut to the time left (0 when none is)."""
        return self.lock_timeout(self.statement_lock_wait_seconds)
