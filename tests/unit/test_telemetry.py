"""Metrics carry the environment dimension the alarms select on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aws_lambda_powertools import Metrics

from functions.ingest.telemetry import record_failure, record_result
from functions.shared.contract import INGEST_SERVICE_NAME, METRICS_NAMESPACE
from functions.shared.errors import GuardTripped


@pytest.fixture
def metrics(monkeypatch: pytest.MonkeyPatch) -> Iterator[Metrics]:
    """The ingest's Metrics as the handler builds it, in the dev environment; emptied afterwards."""
    monkeypatch.setenv("ENVIRONMENT_NAME", "dev")
    instance = Metrics(namespace=METRICS_NAMESPACE, service=INGEST_SERVICE_NAME)
    yield instance
    # Powertools keeps metrics and dimensions per class, shared by every instance: empty both.
    instance.clear_default_dimensions()
    instance.clear_metrics()


def _dimensions(metrics: Metrics) -> dict[str, str]:
    emf = metrics.serialize_metric_set()
    (names,) = emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    return {name: emf[name] for name in names}


def test_a_completed_sync_is_counted_under_its_environment(metrics: Metrics) -> None:
    # Given the ingest's metrics in dev
    # When a completed sync is recorded
    record_result(metrics, {"status": "completed", "rows_inserted": 3})
    # Then its metrics carry the service and the environment, the pair the alarms select on
    assert _dimensions(metrics) == {"service": INGEST_SERVICE_NAME, "environment": "dev"}


def test_a_failure_recorded_after_a_result_keeps_one_environment_dimension(metrics: Metrics) -> None:
    # Given a result already recorded in this invocation
    record_result(metrics, {"status": "dry_run"})
    # When a failure is recorded too
    record_failure(metrics, GuardTripped("reject_ratio", "too many rejects", {"ratio": 0.5}))
    # Then the dimension is set once, to the same value
    assert _dimensions(metrics) == {"service": INGEST_SERVICE_NAME, "environment": "dev"}


def test_no_environment_dimension_outside_aws(metrics: Metrics, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no ENVIRONMENT_NAME (a local run)
    monkeypatch.delenv("ENVIRONMENT_NAME")
    # When a result is recorded
    record_result(metrics, {"status": "skipped"})
    # Then only the service dimension is there
    assert _dimensions(metrics) == {"service": INGEST_SERVICE_NAME}
