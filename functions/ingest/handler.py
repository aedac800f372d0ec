"""Lambda entry for the ingest: route the event, run each sync, answer JSON.

Permanent failures (bad event, bad file, tripped guard) go to the dead-letter queue
from here and are answered, not raised, so Lambda does not retry them pointlessly.
Transient failures that outlived the in-process retries are raised: Lambda's async
retries apply, then its on-failure destination (the same queue).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import pymysql
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.ingest.actions import StatusRequest, parse_action
from functions.ingest.dead_letters import DeadLetterSender
from functions.ingest.events import SyncRequest, is_s3_test_event, parse_event, split_records
from functions.ingest.repository import Repository
from functions.ingest.s3_source import SignalObjectStore
from functions.ingest.service import SyncService
from functions.ingest.sync_values import DurableRun, SyncOptions, today_for
from functions.ingest.telemetry import (
    record_failure,
    record_hand_over,
    record_reconciled,
    record_result,
)
from functions.ingest.work_space import load_file_scratch_bytes
from functions.shared.aws import aws_client
from functions.shared.contract import HEARTBEATS_PER_LEASE, INGEST_SERVICE_NAME, METRICS_NAMESPACE, object_key_for
from functions.shared.db import connect
from functions.shared.errors import HandedOver, PermanentError
from functions.shared.settings import IngestSettings, load_database_settings, load_ingest_settings
from functions.status.report import read_status

logger = Logger(service=INGEST_SERVICE_NAME)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=INGEST_SERVICE_NAME)
# The service logs through the standard library ("upsell_signals.*"); give it the same JSON
# and keys. Powertools copies to top-level loggers only, so the parent must exist first.
logging.getLogger("upsell_signals")
copy_config_to_registered_loggers(source_logger=logger, include={"upsell_signals"})


@dataclass(frozen=True)
class IngestApp:
    """What an invocation needs, built once per container (cold start)."""

    settings: IngestSettings
    service: SyncService
    dead_letters: DeadLetterSender | None
    connect_database: Callable[[], pymysql.Connection[Any]]


@cache
def build_app() -> IngestApp:
    settings = load_ingest_settings()
    database = load_database_settings()
    # A beat that cannot answer within its interval has missed: the next one reconnects.
    beat_seconds = max(1, settings.lease_seconds // HEARTBEATS_PER_LEASE)
    heartbeat_database = replace(
        database, connect_timeout_seconds=beat_seconds, read_timeout_seconds=beat_seconds, write_timeout_seconds=beat_seconds
    )

    def connect_database() -> pymysql.Connection[Any]:
        return connect(database)

    service = SyncService(
        settings,
        connect_database,
        SignalObjectStore(aws_client("s3"), settings.bucket, reserve_bytes=load_file_scratch_bytes(settings)),
        # LOCAL INFILE only where the files are loaded (claims, failures, listing: none).
        connect_staging=lambda: connect(database, local_infile=settings.load_method == "local_infile"),
        connect_heartbeat=lambda: connect(heartbeat_database),
    )
    queue = DeadLetterSender(aws_client("sqs"), settings.dead_letter_queue_url) if settings.dead_letter_queue_url else None
    return IngestApp(settings, service, queue, connect_database)


def fail_dates_held_by(holder_token: str, reason: str) -> int:
    """Record as failed the dates a stopped durable execution still holds, so none reads as handed over; how many."""
    with closing(Repository(build_app().connect_database())) as repository, repository.transaction("record the stop"):
        return repository.ledger.fail_every_date_held_by(holder_token, reason)


def answer_status(app: IngestApp, request: StatusRequest) -> dict[str, Any]:
    """The operator's status report, read on a connection of its own; no claim, no write."""
    return read_status(app.connect_database, request)


def fail_permanently(
    app: IngestApp, event: Any, error: PermanentError, request: SyncRequest | None, request_id: str
) -> dict[str, Any]:
    """Dead-letter the event with its cause and answer `failed`; raise when there is no queue."""
    record_failure(metrics, error)
    logger.error("permanent failure: %s", error, extra={"error_type": type(error).__name__})
    if app.dead_letters is None:
        raise error  # local runs: no queue, so the caller must see the error
    message_id = app.dead_letters.send(
        original_event=event,
        error=error,
        sync_date=request.sync_date if request else None,
        request_id=request_id,
        trigger=request.trigger if request else None,
    )
    answer: dict[str, Any] = {"status": "failed", "reason": str(error), "error_type": type(error).__name__}
    if request is not None:
        # A request naming no key (a person's replay, the schedule) reads the date's own.
        key = request.s3_key or object_key_for(app.settings.key_prefix, request.sync_date)
        answer |= {"sync_date": request.sync_date.isoformat(), "s3_key": key}
    return answer | {"dead_letter_message_id": message_id}


@dataclass(frozen=True)
class Invocation:
    """This invocation as each of its syncs needs it: Lambda's context, the durable run it is, and a fresh run's time."""

    context: LambdaContext
    durable_run: DurableRun | None  # None: a plain invocation (a fresh holder token per claim)
    # The time left when the handler was entered, before a cold start's app or earlier dates
    # used any of it: what a fresh run has.
    run_seconds: float

    @classmethod
    def entered(cls, context: LambdaContext, durable_run: DurableRun | None) -> Invocation:
        return cls(context, durable_run, run_seconds=context.get_remaining_time_in_millis() / 1000)

    def seconds_left(self) -> float:
        return self.context.get_remaining_time_in_millis() / 1000


def sync_one(app: IngestApp, request: SyncRequest, invocation: Invocation) -> dict[str, Any]:
    request_id = invocation.context.aws_request_id
    logger.append_keys(sync_date=request.sync_date.isoformat(), trigger=request.trigger)
    options = SyncOptions(
        invocation_id=request_id,
        trigger=request.trigger,
        force_resync=request.force_resync,
        dry_run=request.dry_run,
        override_guards=request.override_guards,
        seconds_left=invocation.seconds_left,
        run_seconds=invocation.run_seconds,
        durable_run=invocation.durable_run,
    )
    try:
        result = app.service.sync(request.sync_date, request.s3_key, options).as_dict()
    except PermanentError as error:
        return fail_permanently(app, request.event, error, request, request_id)
    except HandedOver:
        record_hand_over(metrics)  # raised so that Lambda's async retry runs the event again and resumes
        raise
    except Exception as error:
        # Said here, with the date: the durable SDK's own line about the failed step carries none.
        logger.exception("sync failed, for Lambda to retry (then dead-letter): %s", error)
        record_failure(metrics, error)  # transient or unforeseen
        raise
    record_result(metrics, result)
    return result


def sync_event(app: IngestApp, event: Any, invocation: Invocation) -> list[dict[str, Any]]:
    """Sync what one event names; a refused event is dead-lettered and answered, touching nothing."""
    today = today_for(invocation.durable_run)
    try:
        requests = parse_event(event, prefix=app.settings.key_prefix, bucket=app.settings.bucket, today=today)
    except PermanentError as error:
        return [fail_permanently(app, event, error, None, invocation.context.aws_request_id)]
    results = [sync_one(app, request, invocation) for request in requests]
    for request in requests:
        if request.trigger.endswith("schedule"):
            results += reconcile_recent_dates(app, request.sync_date, invocation)
    return results


def reconcile_recent_dates(app: IngestApp, synced_date: dt.date, invocation: Invocation) -> list[dict[str, Any]]:
    """After the daily sync, sync the recent dates whose object changed or never completed (a dropped event).

    Each date is tried, whatever the one before it met: a date that fails for a passing reason
    is raised after the others have run (Lambda retries the morning's event), not before them.
    A hand-over ends the run at once, as the time is what ran out.
    """
    holder_token = invocation.durable_run.holder_token if invocation.durable_run else None
    found = app.service.dates_to_reconcile(synced_date, holder_token)
    record_reconciled(metrics, len(found))
    results: list[dict[str, Any]] = []
    first_failure: Exception | None = None
    for date in found:
        # The dead-letter queue gets a replay of that date alone, not the whole morning's run.
        request = SyncRequest(
            sync_date=date.sync_date,
            s3_key=date.s3_key,
            trigger="reconcile",
            event={"sync_date": date.sync_date.isoformat(), "s3_key": date.s3_key},
        )
        try:
            results.append(sync_one(app, request, invocation))
        except HandedOver:
            raise
        except Exception as error:  # noqa: BLE001 - raised once the other dates have run
            # sync_one logged the failure (ERROR, with its date); this says only that the run goes on.
            logger.warning("reconcile of %s failed, going on with the other dates: %s", date.sync_date, error)
            first_failure = first_failure or error
    if first_failure is not None:
        raise first_failure
    return results


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
def handler(event: Any, context: LambdaContext, durable_run: DurableRun | None = None) -> dict[str, Any]:
    """Sync the date(s) the event names and return the result(s) as JSON; or answer a status request.

    `durable_run`: the run of a durable execution this is (its claims are the execution's); None, a fresh token per claim.
    """
    invocation = Invocation.entered(context, durable_run)  # first, before the app is built
    app = build_app()
    if is_s3_test_event(event):
        return {"status": "ignored", "reason": "s3:TestEvent sent when the notification was configured"}
    try:
        status_request = parse_action(event)
    except PermanentError as error:
        return fail_permanently(app, event, error, None, context.aws_request_id)
    if status_request is not None:
        return answer_status(app, status_request)  # asked synchronously: a failure goes back to the caller
    results = [result for part in split_records(event) for result in sync_event(app, part, invocation)]
    if len(results) == 1:
        return results[0]
    statuses = {result["status"] for result in results}
    return {"status": "failed" if "failed" in statuses else "completed", "results": results}
