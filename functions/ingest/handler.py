"""Lambda entry for the ingest: parse the event, run the sync, answer JSON."""

from __future__ import annotations

import datetime as dt
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.ingest.events import parse_event
from functions.ingest.s3_source import SignalObjectStore
from functions.ingest.service import SyncOptions, SyncService
from functions.shared.db import connect
from functions.shared.settings import load_database_settings, load_ingest_settings

logger = Logger(service="upsell-signals-ingest")


@cache
def build_service() -> SyncService:
    """Settings and clients, built once per container (cold start)."""
    settings = load_ingest_settings()
    database = load_database_settings()
    return SyncService(
        settings,
        lambda: connect(database, local_infile=settings.load_method == "local_infile"),
        SignalObjectStore(boto3.client("s3"), settings.bucket),
    )


@logger.inject_lambda_context(log_event=False)
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    """Sync the date the event names and return the result as JSON."""
    service = build_service()
    request = parse_event(event, prefix=load_ingest_settings().key_prefix, today=dt.datetime.now(dt.UTC).date())
    logger.append_keys(sync_date=request.sync_date.isoformat(), trigger=request.trigger)
    result = service.sync(
        request.sync_date,
        request.s3_key,
        SyncOptions(
            invocation_id=context.aws_request_id,
            trigger=request.trigger,
            force_resync=request.force_resync,
            dry_run=request.dry_run,
            override_guards=request.override_guards,
        ),
    )
    return result.as_dict()
