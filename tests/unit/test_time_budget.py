"""A publish no run can hold is refused against the run less its margin, not the bare timeout."""

from __future__ import annotations

import pytest

from functions.ingest.time_budget import TimeBudget
from functions.shared.errors import PublishTooLong
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
