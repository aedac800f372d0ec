"""The ingest as a Lambda durable function: each run of an event is a step, a pause between runs, until it is done.

A sync that cannot finish before the function's timeout hands over at a chunk boundary
(functions/ingest/time_budget.py). Here that is a step's answer, not an error: the execution
waits (a durable wait costs no compute) and runs the same event again in a fresh invocation,
which resumes from the last committed chunk. No Errors datapoint, no alarm, no dead letter.

    run 1 (step) -> handed over -> pause (wait) -> run 2 (step) -> ... -> completed

Bounded: `max_runs` (at least a day of work, functions/shared/contract.py), and a run that
hands over where the one before it did has made no progress; either is dead-lettered with its
reason. A run that raises (a transient fault that outlived the in-process retries) is retried as
Lambda's async retry did (after 60 s, then 120 s); after that the execution fails
(DurableExecutionFailed) and Lambda puts the event on the function's dead-letter queue. A run killed
mid-step (its timeout, memory) is run again by the execution's next invocation. Every run of an
execution claims under the execution's one holder token (`holder_token_of`): the date a run claimed
is the next run's own claim, resumed at once, even while the dead or unrecorded run's lease still runs.
A well-formed status request is the exception: it reads and writes nothing, so it is answered at
once, with no step (and no retry: a failure goes back to the operator who asked).

The engine wraps the plain handler (functions/ingest/handler.py): the domain knows nothing of it.
Durable functions: Lambda Developer Guide, "Lambda durable functions"; the SDK is
aws-durable-execution-sdk-python (its README, and `DurableContext.step`/`wait`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from aws_durable_execution_sdk_python import DurableContext, StepContext, StepError, durable_execution
from aws_durable_execution_sdk_python.config import Duration, JitterStrategy, StepConfig
from aws_durable_execution_sdk_python.retries import RetryDecision, RetryStrategyConfig, create_retry_strategy
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.ingest import handler as plain
from functions.ingest.actions import parse_action
from functions.ingest.events import with_default_date
from functions.ingest.sync_values import DurableRun
from functions.shared.contract import CONTINUATION_PAUSE_SECONDS, LAMBDA_FIRST_RETRY_SECONDS
from functions.shared.errors import HandedOver, IngestError, NoProgress, PermanentError

logger = logging.getLogger("upsell_signals.continuation")



class RunEvent(Protocol):
    """One run of the event: the plain handler (functions/ingest/handler.py), its claims the `durable_run`'s."""

    def __call__(self, event: Any, context: LambdaContext, durable_run: DurableRun | None = None) -> dict[str, Any]: ...


# Sends the event to the dead-letter queue with its reason; returns the message id (None: no queue).
DeadLetter = Callable[[Any, Exception], str | None]

# A run that raised is retried as Lambda retried a failed async event: twice, 60 s then 120 s later.
_AS_LAMBDA_RETRIES = create_retry_strategy(
    RetryStrategyConfig(
        max_attempts=3,
        initial_delay=Duration.from_seconds(LAMBDA_FIRST_RETRY_SECONDS),
        backoff_rate=2,
        jitter_strategy=JitterStrategy.NONE,
    )
)


def retry_like_lambda(error: Exception, attempts_made: int) -> RetryDecision:
    """A permanent error (only raised where there is no queue to answer it) is not retried; anything else is."""
    if isinstance(error, PermanentError):
        return RetryDecision.no_retry()
    return _AS_LAMBDA_RETRIES(error, attempts_made)


RUN_CONFIG = StepConfig(retry_strategy=retry_like_lambda)
# Not retried when it fails. A kill inside the step runs it again on replay (the default,
# at-least-once per attempt), so a dead letter may be sent twice; at-most-once would instead
# fail the execution on replay and skip recording the stop.
ONCE = StepConfig(retry_strategy=lambda error, attempts: RetryDecision.no_retry())


def holder_token_of(durable_execution_arn: str) -> str:
    """The token every run of an execution claims its dates with: the same in every invocation of the execution.

    A run that ends without recording its hand-over (killed between its last chunk and the record,
    or the database gone at that moment) leaves the date held under a live lease. With a token of
    its own, the next run would find the date held, answer in_progress and end the execution
    "successfully" with the date unsynced; with the execution's, it resumes the claim at once
    (functions/ingest/claim_rules.py). Another execution (a duplicate delivery, a redrive) has
    another ARN and so another token: it never shares a claim. Hashed to the ledger's 32
    characters (migrations/0008).
    """
    return hashlib.sha256(durable_execution_arn.encode()).hexdigest()[:32]


def lambda_context_of(context: DurableContext) -> LambdaContext:
    """The invocation's own Lambda context: its remaining time is the run's time budget."""
    if context.lambda_context is None:
        raise RuntimeError("a durable context without its Lambda context cannot tell a run's time left")
    return context.lambda_context  # type: ignore[return-value]


def is_status_request(event: Any) -> bool:
    """A well-formed `{"action": "status", ...}`; a malformed action is refused in a run, as any bad event."""
    try:
        return parse_action(event) is not None
    except PermanentError:
        return False


@dataclass(frozen=True)
class Continuation:
    """Runs one event until it answers, each run a checkpointed step; the durable handler's whole body.

    A status request is answered at once, with no step.
    """

    run_event: RunEvent
    dead_letter: DeadLetter
    max_runs: int
    fail_held_dates: Callable[[str, str], int] = plain.fail_dates_held_by  # (holder token, reason)
    pause_seconds: int = CONTINUATION_PAUSE_SECONDS
    run_context: Callable[[DurableContext], LambdaContext] = lambda_context_of

    def __call__(self, event: Any, context: DurableContext) -> dict[str, Any]:
        if is_status_request(event):
            # It reads and writes nothing, so it needs no checkpoint: answered outside any step, its
            # answer is the execution's result (6 MB when asked synchronously), not a step's payload
            # (1 MB at most: Lambda API, OperationUpdate.Payload), which a long history outgrows.
            return self.run_event(event, self.run_context(context))
        today = dt.date.fromisoformat(
            context.step(lambda _: dt.datetime.now(dt.UTC).date().isoformat(), name="today", config=ONCE)
        )
        event = with_default_date(event, today)
        stopped_at: str | None = None
        for run in range(1, self.max_runs + 1):
            try:
                answer = context.step(self._one_run(event, context, run, today), name=f"run {run}", config=RUN_CONFIG)
            except StepError:
                # The execution fails (DurableExecutionFailed). Lambda sends the event of an async start whose
                # execution ends FAILED, STOPPED or TIMED_OUT to the function's dead-letter queue (Lambda Developer
                # Guide, "Best practices for Lambda durable functions", Error handling; a durable function has no
                # destinations): a dead letter sent here as well would be a second one for the same failure.
                raise
            if answer.get("status") != "handed_over":
                return answer
            if answer["stopped_at"] == stopped_at:
                reason = f"no progress: run {run} handed over {stopped_at}, where run {run - 1} did"
                return self._give_up(event, context, NoProgress(reason))
            stopped_at = answer["stopped_at"]
            if not context.is_replaying():
                logger.info(
                    "run %d handed over (%s); run %d starts in %d s in durable execution %s",
                    run,
                    answer["reason"],
                    run + 1,
                    self.pause_seconds,
                    context.state.durable_execution_arn,
                )
            context.wait(Duration.from_seconds(self.pause_seconds), name=f"pause after run {run}")
        bound = f"still unfinished after {self.max_runs} runs, the bound (CONTINUATION_MAX_RUNS): last stopped {stopped_at}"
        return self._give_up(event, context, NoProgress(bound))

    def _one_run(
        self, event: Any, context: DurableContext, run_number: int, started_on: dt.date
    ) -> Callable[[StepContext], dict[str, Any]]:
        execution_arn = context.state.durable_execution_arn
        durable_run = DurableRun(
            holder_token=holder_token_of(execution_arn), execution_arn=execution_arn, number=run_number, started_on=started_on
        )

        def run(_: StepContext) -> dict[str, Any]:
            try:
                return self.run_event(event, self.run_context(context), durable_run=durable_run)
            except HandedOver as handed:
                return {"status": "handed_over", "reason": str(handed), "stopped_at": handed.stopped_at}

        return run

    def _give_up(self, event: Any, context: DurableContext, error: Exception) -> dict[str, Any]:
        message_id = context.step(lambda _: self.dead_letter(event, error), name="dead letter", config=ONCE)
        holder_token = holder_token_of(context.state.durable_execution_arn)
        context.step(lambda _: self._record_the_stop(holder_token, error), name="record the stop", config=ONCE)
        logger.error("continuation stopped: %s", error, extra={"dead_letter_message_id": message_id})
        return {
            "status": "failed",
            "reason": str(error),
            "error_type": type(error).__name__,
            "dead_letter_message_id": message_id,
        }

    def _record_the_stop(self, holder_token: str, error: Exception) -> int | None:
        """Mark failed the dates this execution holds; None when that could not be written (the dead letter is sent)."""
        try:
            failed = self.fail_held_dates(holder_token, str(error))
        except IngestError as unrecorded:
            logger.error("continuation stopped; its dates could not be recorded failed: %s", unrecorded)
            return None
        logger.info("continuation stopped: %d date(s) it held recorded failed", failed)
        return failed


@cache
def deployed_continuation() -> Continuation:
    """The continuation of the deployed function: the plain handler, its queue and its bound of runs."""
    app = plain.build_app()

    def dead_letter(event: Any, error: Exception) -> str | None:
        if app.dead_letters is None:
            return None
        return app.dead_letters.send(original_event=event, error=error, sync_date=None, request_id="", trigger=None)

    return Continuation(run_event=plain.handler, dead_letter=dead_letter, max_runs=app.settings.continuation_max_runs)


@durable_execution
def handler(event: Any, context: DurableContext) -> dict[str, Any]:
    """The deployed entry (INGEST_HANDLER): the plain handler's runs, continued until the event is done."""
    return deployed_continuation()(event, context)
