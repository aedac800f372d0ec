"""Metrics for each sync (CloudWatch EMF through Powertools). Names come from shared/contract.py, as the alarms' do."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from functions.shared.contract import (
    DATES_RECONCILED,
    ENVIRONMENT_DIMENSION,
    GUARD_TRIPPED,
    ROW_METRICS,
    STATUS_METRICS,
    SYNC_DURATION,
    SYNC_FAILED,
    SYNC_HANDED_OVER,
)
from functions.shared.errors import GuardTripped
from functions.shared.settings import load_environment_name


def tag_environment(metrics: Metrics) -> None:
    """Add the environment dimension (idempotent: a default dimension, kept across flushes)."""
    environment = load_environment_name()
    if environment:
        metrics.set_default_dimensions(**{ENVIRONMENT_DIMENSION: environment})


def record_result(metrics: Metrics, result: dict[str, Any]) -> None:
    """Counters for one finished sync: its status, its rows and its duration."""
    tag_environment(metrics)
    metrics.add_metric(name=STATUS_METRICS[result["status"]], unit=MetricUnit.Count, value=1)
    for field, metric in ROW_METRICS.items():
        if field in result:
            metrics.add_metric(name=metric, unit=MetricUnit.Count, value=result[field])
    if "duration_ms" in result:
        metrics.add_metric(name=SYNC_DURATION, unit=MetricUnit.Milliseconds, value=result["duration_ms"])


def record_failure(metrics: Metrics, error: Exception) -> None:
    """SyncFailed (alarmed on), GuardTripped for a kill switch; the error type as metadata."""
    tag_environment(metrics)
    metrics.add_metric(name=SYNC_FAILED, unit=MetricUnit.Count, value=1)
    metrics.add_metadata(key="error_type", value=type(error).__name__)
    if isinstance(error, GuardTripped):
        metrics.add_metric(name=GUARD_TRIPPED, unit=MetricUnit.Count, value=1)
        metrics.add_metadata(key="guard", value=error.guard)


def record_hand_over(metrics: Metrics) -> None:
    """SyncHandedOver: the sync stopped before the timeout and Lambda's retry resumes it (not a failure)."""
    tag_environment(metrics)
    metrics.add_metric(name=SYNC_HANDED_OVER, unit=MetricUnit.Count, value=1)


def record_reconciled(metrics: Metrics, dates: int) -> None:
    """DatesReconciled: how many recent dates the daily run found to sync (0 on an ordinary morning)."""
    tag_environment(metrics)
    metrics.add_metric(name=DATES_RECONCILED, unit=MetricUnit.Count, value=dates)
