"""Moments of a sync a test may pause or break, given to SyncService; in production each does nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from functions.ingest.repository import Repository
from functions.ingest.sync_values import HeldDate


def _carry_on(*_args: Any) -> None:
    """The hook that does nothing: production's."""


@dataclass(frozen=True, kw_only=True)
class SyncHooks:
    """Moments of a sync a test may pause or break (a slow process, a killed connection); nothing in production."""

    before_publish: Callable[[Repository], None] = _carry_on  # on the connection that publishes
    before_clean_up: Callable[[Repository], None] = _carry_on  # on the clean-up's own connection, after the publish
    before_recording_failure: Callable[[HeldDate], None] = _carry_on
