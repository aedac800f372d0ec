"""The continuation's own rules, through the durable engine's testing SDK: when a run stops where the one before it did."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from aws_durable_execution_sdk_python import durable_execution
from aws_durable_execution_sdk_python_testing.runner import DurableFunctionTestRunner

from functions.ingest.continuation import Continuation
from functions.ingest.time_budget import TimeBudget
from functions.shared.errors import HandedOver
from functions.shared.settings import TimeBudgetSettings
from tests.scripts_support import LocalContext


class Runs:
    """A plain handler that hands over at each of `places` in turn, then completes; what the continuation sent."""

    def __init__(self, places: list[str]) -> None:
        self.places = places
        self.runs = 0
        self.dead_letters: list[str] = []
        self.failed_holders: list[tuple[str, str]] = []

    def run_event(self, event: Any, context: Any, durable_run: Any = None) -> dict[str, Any]:
        self.runs += 1
        if self.runs <= len(self.places):
            raise HandedOver(f"time budget: stopped {self.places[self.runs - 1]}", stopped_at=self.places[self.runs - 1])
        return {"status": "completed"}

    def execute(self) -> dict[str, Any]:
        continuation = Continuation(
            run_event=self.run_event,
            dead_letter=lambda event, error: self.dead_letters.append(str(error)) or "dead-letter-id",
            max_runs=10,
            fail_held_dates=lambda token, reason: self.failed_holders.append((token, reason)) or 1,
            pause_seconds=1,
            run_context=lambda context: LocalContext("ingest", timeout_seconds=900),
        )
        with DurableFunctionTestRunner(handler=durable_execution(continuation)) as runner:
            result = runner.run(input=json.dumps({"sync_date": "2026-01-30"}), execution_timeout=60, execution_name="rules")
        answer: dict[str, Any] = json.loads(result.result or "null")
        return answer


def test_a_run_that_hands_over_where_the_one_before_it_did_is_dead_lettered_once_and_its_dates_recorded_failed() -> None:
    # Given runs that hand over twice at the same place (the bound, 10 runs, is far off)
    runs = Runs(["2026-01-30: staging at row 2000 of 9000 (pass 1, ETag e)"] * 5)

    # When the execution runs them
    answer = runs.execute()

    # Then it stops after the second, dead-letters the event once with the reason naming the place,
    # and records the dates it holds failed with that reason
    assert (answer["status"], answer["error_type"], runs.runs) == ("failed", "NoProgress", 2), answer
    assert runs.dead_letters == [
        "no progress: run 2 handed over 2026-01-30: staging at row 2000 of 9000 (pass 1, ETag e), where run 1 did"
    ]
    assert [reason for _, reason in runs.failed_holders] == runs.dead_letters


def test_runs_that_hand_over_at_different_places_continue_to_the_end() -> None:
    # Given two dates of one event that each stop before publishing the same number of rows
    runs = Runs(["2026-01-30: before publishing 400 staged rows", "2026-01-31: before publishing 400 staged rows"])

    # When the execution runs them
    answer = runs.execute()

    # Then that is progress: the third run completes, nothing is dead-lettered or recorded failed
    assert (answer["status"], runs.runs) == ("completed", 3), answer
    assert runs.dead_letters == [] and runs.failed_holders == []


def test_a_hand_over_names_its_date_so_that_two_dates_stopping_at_the_same_place_differ() -> None:
    # Given the budgets of two dates' syncs with no time left past the margin
    settings = TimeBudgetSettings(margin_seconds=30)
    places = []
    for sync_date in (dt.date(2026, 1, 30), dt.date(2026, 1, 31)):
        budget = TimeBudget(settings, lambda: 10.0, sync_date=sync_date)
        # When each stops at the same row, and before publishing the same rows
        with pytest.raises(HandedOver) as staging:
            budget.stop_if_out_of_time("staging at row 2000 of 9000")
        with pytest.raises(HandedOver) as publishing:
            budget.stop_before_publish_if_short(400)
        places += [staging.value.stopped_at, publishing.value.stopped_at]
    # Then every place names its date, so none equals another
    assert places == [
        "2026-01-30: staging at row 2000 of 9000",
        "2026-01-30: before publishing 400 staged rows",
        "2026-01-31: staging at row 2000 of 9000",
        "2026-01-31: before publishing 400 staged rows",
    ]
