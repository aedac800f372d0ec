"""The schedule the stack creates sends a payload the ingest parses to the right date."""

from __future__ import annotations

import datetime as dt
import json

from functions.ingest.events import parse_event


def test_the_payload_the_cdk_schedule_sends_parses_to_the_day_before() -> None:
    # Given the input the stack gives EventBridge Scheduler, with the context attributes filled in as Scheduler does
    from infra.constructs.ingest import SCHEDULED_EVENT

    filled = json.loads(
        json.dumps(SCHEDULED_EVENT)
        .replace("<aws.scheduler.scheduled-time>", "2026-01-31T06:00:00Z")
        .replace("<aws.scheduler.execution-id>", "d4c3b2a1-0000-4000-8000-000000000001")
        .replace("<aws.scheduler.schedule-arn>", "arn:aws:scheduler:eu-west-1:123456789012:schedule/default/upsell-signals-daily")
    )

    [request] = parse_event(filled, prefix="passive_upsell_signals/", bucket="b", today=dt.date(2026, 11, 23))

    assert (request.sync_date, request.trigger) == (dt.date(2026, 1, 30), "schedule")
