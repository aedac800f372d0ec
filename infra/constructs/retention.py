"""CloudWatch Logs retention from the day counts cdk.json uses."""

from __future__ import annotations

from aws_cdk import aws_logs as logs

from infra.config import LOG_RETENTION_DAYS

# jsii enums carry names, not day counts; CloudWatch's allowed values in the enum's own order.
_BY_DAYS = dict(zip(LOG_RETENTION_DAYS, [member for member in logs.RetentionDays if member.name != "INFINITE"], strict=True))


def retention(days: int) -> logs.RetentionDays:
    """The RetentionDays member for `days` (already validated by infra.config)."""
    return _BY_DAYS[days]
