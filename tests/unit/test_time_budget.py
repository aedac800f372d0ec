"""A publish no run can hold is refused against the run less its margin, not the bare timeout."""

from __future__ import annotations

import re

import pytest

from functions.ingest.time_budget import TimeBudget
from functions.shared.errors import HandedOver, PublishTooLong
from functions.shared.settings import load_ingest_settings


def budget_of_a_fresh_run(run_seconds: float) -> TimeBudget:
    settings = load_ingest_settings({"SIGNALS_BUCKET": "b", "PUBLISH_ROWS_PER_SECOND": "100", "TIME_BUDGET_MARGIN_SECONDS": "5"})
    return TimeBudget(settings.time_budget, lambda: run_seconds)


def test_a_publish_that_fits_a_run_only_by_eating_its_margin_is_refused() -> None:
    # Given a fresh 60 s run with 5 s of margin, When a publish of 57 s (5,700 rows at 100/s) is judged,
    # Then it is refused: every run would hand it over before the margin, none could publish it;
    # the reason names what an operator can change, the cdk.json rate setting among them
    with pytest.raises(PublishTooLong, match="publishing 5700 rows needs about 57s") as refused:
        budget_of_a_fresh_run(60).refuse_a_publish_no_run_can_hold(5_700)
    assert "timeout" in str(refused.value) and "ingest.publishRowsPerSecond in cdk.json" in str(refused.value)


def test_a_publish_that_ends_at_the_margin_is_not_refused() -> None:
    # Given the same run, When a publish of 55 s is judged, Then it is not refused (it returns)
    assert budget_of_a_fresh_run(60).refuse_a_publish_no_run_can_hold(5_500) is None


def test_an_older_date_counts_the_newer_file_its_publish_reads() -> None:
    # Given a fresh 60 s run, When a publish of 10 s (1,000 rows at 100/s) that also reads a newer
    # date's 2,500,000 rows (50 s at the default 50,000/s) is judged, Then it is refused, naming both
    budget = budget_of_a_fresh_run(60)
    assert budget.refuse_a_publish_no_run_can_hold(1_000) is None
    with pytest.raises(
        PublishTooLong, match="publishing 1000 rows and reading the 2500000 rows of a newer date's file needs about 60s"
    ):
        budget.refuse_a_publish_no_run_can_hold(1_000, newer_rows=2_500_000)


def test_another_newer_file_is_read_only_while_one_as_long_as_the_longest_and_the_writes_fit() -> None:
    # Given a run with 20 s left (5 of them margin), whose publish writes 500 rows (5 s at 100/s)
    budget = budget_of_a_fresh_run(20)
    # When the longest newer file so far took 10 s, Then another still fits (10 + 5 = 15 s)
    assert budget.stop_before_another_newer_file_if_short(10, 500, files_read=1) is None
    # And when it took 11 s, the date is handed over, the same place named whatever was read
    with pytest.raises(
        HandedOver,
        match=re.escape(
            "the publish read 1 newer file(s), the longest in 11s; another as long and writing 500 rows need about 16s"
        ),
    ) as handed:
        budget.stop_before_another_newer_file_if_short(11, 500, files_read=1)
    assert handed.value.stopped_at == "reading newer dates' files inside its publish"
