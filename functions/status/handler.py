"""Lambda entry for the status function: answer `{"action": "status", ...}` and nothing else.

A function of its own, with its own reserved concurrency, so an operator's question is never
throttled behind the syncs it asks about (the ingest's concurrency is full during a backfill).
It imports no pyarrow and carries no pyarrow layer, so it starts fast. Invoked synchronously:
a failure is raised back to the caller, never dead-lettered.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.ingest.actions import parse_action
from functions.shared.contract import STATUS_SERVICE_NAME
from functions.shared.db import connect
from functions.shared.errors import BadEvent
from functions.shared.settings import load_database_settings
from functions.status.report import read_status

logger = Logger(service=STATUS_SERVICE_NAME)


@logger.inject_lambda_context(log_event=True, clear_state=True)
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    """The status report the event asks for (history, or one date's runs and rejects); no claim, no write."""
    request = parse_action(event)
    if request is None:
        raise BadEvent(f'the status function answers {{"action": "status", ...}} only, got: {str(event)[:200]}')
    settings = load_database_settings()
    return read_status(lambda: connect(settings), request)
