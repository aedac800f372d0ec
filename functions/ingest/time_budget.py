"""The time a sync has left before Lambda kills it, and whether a step still fits in it.

Lambda ends a function at its timeout without warning. A sync watches the clock at
chunk boundaries and before its one-transaction steps (a first load, a publish); when
the next step would not finish with the margin left, it hands the date over instead:
its committed chunks stay, the lease is let go, and the next run of the same event
resumes from there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from functions.shared.errors import HandedOver
from functions.shared.settings import TimeBudgetSettings


@dataclass
class TimeBudget:
    """Seconds left (as the caller's clock says) against a margin and measured rates."""

    settings: TimeBudgetSettings
    seconds_left: Callable[[], float] | None  # None: no deadline (a local run without --timeout)

    def fits(self, seconds_needed: float) -> bool:
        """Whether a step of about `seconds_needed` ends before the margin."""
        return self.seconds_left is None or self.seconds_left() - self.settings.margin_seconds >= seconds_needed

    def first_load_fits(self, rows: int) -> bool:
        return self.fits(rows / self.settings.first_load_rows_per_second)

    def stop_if_out_of_time(self, where: str) -> None:
        """HandedOver when only the margin is left: called at a chunk boundary, before the next chunk."""
        if not self.fits(0):
            raise HandedOver(f"time budget: stopped {where} with {self._left()} left; the next run resumes here")

    def stop_before_publish_if_short(self, rows_staged: int) -> None:
        """HandedOver when the publish would not finish in the time left after this run's staging.

        Call it only after staging in the same run: a run that finds the staging complete
        publishes whatever the estimate, since handing over could not give the next run
        more time than it has.
        """
        needed = rows_staged / self.settings.publish_rows_per_second
        if not self.fits(needed):
            raise HandedOver(
                f"time budget: publishing {rows_staged} staged rows needs about {needed:.0f}s and {self._left()} are left; "
                "the next run publishes them"
            )

    def _left(self) -> str:
        return "unlimited time" if self.seconds_left is None else f"{self.seconds_left():.0f}s"
