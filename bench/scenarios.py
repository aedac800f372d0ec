"""The scenarios each contender runs, in order, and the contenders themselves."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

FIRST_DATE = dt.date(2026, 1, 30)
# Scenario dates are two days apart: a retried sync takes the day in between, so it
# stages afresh and stays older than the next scenario's date (the stale-date guard).


@dataclass(frozen=True)
class Scenario:
    """One timed step of a contender's sequence."""

    key: str
    label: str
    file: str  # which SizeFiles attribute it reads: day_one, day_two_a or day_two_b
    sync_date: dt.date
    force_resync: bool = False
    missing_rows: str = "keep"
    restore_day_one: bool = False  # put the day-one table back first (untimed)


FIRST_LOAD = Scenario("first_load", "first load", "day_one", FIRST_DATE)
RESYNC = Scenario("resync", "forced re-sync, identical file", "day_one", FIRST_DATE, force_resync=True)
DAY_TWO_A = Scenario("day_two_a", "day two (a): 10% changed, 1% new, 1% gone", "day_two_a", FIRST_DATE + dt.timedelta(days=2))
DAY_TWO_B = Scenario(
    "day_two_b",
    "day two (b): (a) + MODEL_UPDATED_AT = run time",
    "day_two_b",
    FIRST_DATE + dt.timedelta(days=4),
    restore_day_one=True,
)
DAY_TWO_A_DELETE = Scenario(
    "day_two_a_delete",
    "day two (a), MISSING_ROWS=delete",
    "day_two_a",
    FIRST_DATE + dt.timedelta(days=6),
    missing_rows="delete",
    restore_day_one=True,
)
SCENARIOS: tuple[Scenario, ...] = (FIRST_LOAD, RESYNC, DAY_TWO_A, DAY_TWO_B, DAY_TWO_A_DELETE)

CONTENDERS: tuple[str, ...] = ("floor", "sync", "sync-insert", "original", "awswrangler")
# This sync, once per STAGING_LOAD_METHOD: each gets its own table and targets.
SYNC_LOAD_METHODS: dict[str, str] = {"sync": "local_infile", "sync-insert": "insert"}
CONTENDER_LABELS = {
    "sync": "this sync",
    "sync-insert": "this sync (insert)",
    "original": "original design",
    "awswrangler": "awswrangler",
    "floor": "floor",
}
PLANS: dict[str, tuple[Scenario, ...]] = {
    "floor": (FIRST_LOAD,),
    "sync": SCENARIOS,
    "sync-insert": SCENARIOS,
    "original": (FIRST_LOAD, RESYNC, DAY_TWO_A, DAY_TWO_B),
    "awswrangler": (FIRST_LOAD, RESYNC, DAY_TWO_A, DAY_TWO_B),
}
