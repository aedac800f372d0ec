"""Sending a failed event to the SQS dead-letter queue, with why it failed."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from functions.shared.errors import translate_errors

# SQS takes up to 1 MiB; an event that will not fit is cut (and says so), never dropped.
MAX_EVENT_CHARS = 200_000


class DeadLetterSender:
    """Sends to the queue operators redrive from; messages carry the original event and the cause."""

    def __init__(self, sqs_client: Any, queue_url: str) -> None:
        self._sqs = sqs_client
        self._queue_url = queue_url

    def send(
        self, *, original_event: Any, error: Exception, sync_date: dt.date | None, request_id: str, trigger: str | None
    ) -> str:
        """Send one message; returns its id. Redriving it replays `original_event`."""
        event_text = json.dumps(original_event, default=str)
        body = {
            "original_event": original_event if len(event_text) <= MAX_EVENT_CHARS else event_text[:MAX_EVENT_CHARS],
            "original_event_truncated": len(event_text) > MAX_EVENT_CHARS,
            "error_type": type(error).__name__,
            "error_message": str(error),
            "retryable": bool(getattr(error, "retryable", False)),
            "sync_date": sync_date.isoformat() if sync_date else None,
            "trigger": trigger,
            "request_id": request_id,
            "failed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        with translate_errors("send to the dead-letter queue"):
            response = self._sqs.send_message(
                QueueUrl=self._queue_url,
                MessageBody=json.dumps(body, default=str),
                MessageAttributes={
                    "error_type": {"DataType": "String", "StringValue": type(error).__name__},
                    "sync_date": {"DataType": "String", "StringValue": body["sync_date"] or "unknown"},
                },
            )
        return str(response["MessageId"])
