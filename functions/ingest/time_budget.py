"""The time a sync has left before Lambda kills it, and whether a step still fits in it.

Lambda ends a function at its timeout without warning. A sync watches the clock at
chunk boundaries and before its one-transaction steps (a first load, a publish); when
the next step would not finish with the margin left, it hands the date over instead:
its committed chunks stay, the lease is let go, and the next run of the same event
resumes from there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from functions.shared.errors import HandedOver, PublishTooLong
from functions.shared.settings import TimeBudgetSettings


@dataclass
class TimeBudget:
    """Seconds left (as the caller's clock says) against a margin and measured rates."""

    settings: TimeBudgetSettings
    seconds_left: Callable[[], float] | None  # None: no deadline (a local run without --timeout)
    # What a fresh run has (the function's timeout, near enough). Default: the time left when
    # the budget is made, which is less than a fresh run's when the invocation did other
    # work first (a cold start, or the dates an event names before this one).
    run_seconds: float | None = None
    # The date whose sync this budget times: a hand-over names it, so that two dates of one
    # event stopping at the same row are not taken for one date making no progress.
    sync_date: dt.date | None = None

    def __post_init__(self) -> None:
        if self.run_seconds is None and self.seconds_left is not None:
            self.run_seconds = self.seconds_left()

    def refuse_a_publish_no_run_can_hold(self, rows: int, newer_rows: int = 0) -> None:
        """PublishTooLong when publishing `rows` would outlast even a fresh run: known before staging, not after.

        The publish is one transaction (readers never see half a day), so no hand-over can split
        it; without this, every run would stage or find the file staged, start the publish and be
        killed at its timeout, and the date would wait in the dead-letter queue for a person.
        `newer_rows`: the rows of the newest date's file an older date reads inside its publish.
        """
        if self.run_seconds is None:
            return
        needed = self.publish_seconds(rows, newer_rows)
        if needed > self.run_seconds - self.settings.margin_seconds:
            newer = f" and reading the {newer_rows} rows of a newer date's file" if newer_rows else ""
            raise PublishTooLong(
                f"publishing {rows} rows{newer} needs about {needed:.0f}s at PUBLISH_ROWS_PER_SECOND="
                f"{self.settings.publish_rows_per_second} (NEWER_FILE_ROWS_PER_SECOND="
                f"{self.settings.newer_file_rows_per_second}), more than one run has ({self.run_seconds:.0f}s, "
                f"{self.settings.margin_seconds}s of it kept as margin): raise the function's timeout (at most 900 s), "
                'or split the file into dates Lambda can publish one run each; or, if this database\'s "published" '
                "log lines all show a higher publish_rows_per_second (the day that changed most rows is the slowest), "
                "raise ingest.publishRowsPerSecond in cdk.json to a margin below the lowest"
            )

    def publish_seconds(self, rows: int, newer_rows: int = 0) -> float:
        """About how long a publish of `rows` takes, reading `newer_rows` of newer files inside it (newest_wins.py)."""
        return rows / self.settings.publish_rows_per_second + newer_rows / self.settings.newer_file_rows_per_second

    def fits(self, seconds_needed: float) -> bool:
        """Whether a step of about `seconds_needed` ends before the margin."""
        return self.seconds_left is None or self.seconds_left() - self.settings.margin_seconds >= seconds_needed

    def wait_seconds(self, longest: int) -> int:
        """How long a wait (a lock) may last: `longest`, cut to the time left before the margin, at least a second.

        A wait the run cannot outlast would end in Lambda's kill mid-wait; cut short, it fails
        as transient with time left, and Lambda's retry resumes.
        """
        left = self.seconds_before_margin()
        return longest if left is None else min(longest, left)

    def seconds_before_margin(self) -> int | None:
        """The whole seconds left before the margin, at least one; None without a deadline."""
        if self.seconds_left is None:
            return None
        return max(1, int(self.seconds_left() - self.settings.margin_seconds))

    def stop_after_waiting(self, where: str, why: str) -> NoReturn:
        """HandedOver after a wait that used the time left: what the run waited for is busy beyond this run."""
        raise HandedOver(
            f"time budget: {why}; stopped {where} with {self._left()} left; the next run starts here again",
            stopped_at=self._of_the_date(where),
        )

    def first_load_fits(self, rows: int) -> bool:
        return self.fits(rows / self.settings.first_load_rows_per_second)

    def stop_if_out_of_time(self, where: str) -> None:
        """HandedOver when only the margin is left: called at a chunk boundary, before the next chunk."""
        if not self.fits(0):
            raise HandedOver(
                f"time budget: stopped {where} with {self._left()} left; the next run resumes here",
                stopped_at=self._of_the_date(where),
            )

    def stop_before_publish_if_short(self, rows_staged: int, newer_rows: int = 0) -> None:
        """HandedOver when the publish would not finish in the time left after this run's staging.

        Call it after staging in the same run, or in an in-process retry: a run's first attempt
        that finds the staging complete publishes whatever the estimate, since handing over
        could not give the next run more time than it has; a retry has spent some of it.
        """
        needed = self.publish_seconds(rows_staged, newer_rows)
        if not self.fits(needed):
            newer = f" (and reading {newer_rows} rows of a newer date's file)" if newer_rows else ""
            raise HandedOver(
                f"time budget: publishing {rows_staged} staged rows{newer} needs about {needed:.0f}s and {self._left()} "
                "are left; the next run publishes them",
                stopped_at=self._of_the_date(f"before publishing {rows_staged} staged rows"),
            )

    def stop_before_another_newer_file_if_short(self, longest_seconds: float, rows_to_write: int, *, files_read: int) -> None:
        """HandedOver inside an older date's publish when another newer file, as long as the longest so far, would not fit.

        Only the first newer file is known before the publish (`stop_before_publish_if_short`);
        the rest are read while some change is undecided. Stopping rolls the publish back, nothing
        written, and the date's next run (a fresh one) reads them again: one that stops here too
        cannot publish the date, and the execution ends with `no progress` instead of being
        killed at every timeout.
        """
        needed = longest_seconds + self.publish_seconds(rows_to_write)
        if not self.fits(needed):
            raise HandedOver(
                f"time budget: the publish read {files_read} newer file(s), the longest in {longest_seconds:.0f}s; "
                f"another as long and writing {rows_to_write} rows need about {needed:.0f}s and {self._left()} are "
                "left: the publish is rolled back, and a fresh run reads them again",
                stopped_at=self._of_the_date("reading newer dates' files inside its publish"),
            )

    def _of_the_date(self, where: str) -> str:
        return where if self.sync_date is None else f"{self.sync_date.isoformat()}: {where}"

    def _left(self) -> str:
        return "unlimited time" if self.seconds_left is None else f"{self.seconds_left():.0f}s"
