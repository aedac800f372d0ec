"""Per-step timing of the real sync, by wrapping its collaborators in the worker process only.

Nothing in functions/ is edited: the worker replaces a few methods on the classes (and two
names in the chunk pipeline's module) with timed wrappers before it builds the service. Nested
calls count towards the outermost timed step (per thread). Steps that ran on another
thread than the caller of sync (the service prepares the next chunk on a worker thread
while the current one loads) are marked as such: they overlap the main thread's steps,
so only the main thread's steps are subtracted from the total to give "other".
Names that the product code no longer has are skipped, so the bench keeps working as
the service evolves.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

# (module, owner attribute or None for a module-level name, attribute, step name)
_TIMED_CALLS: tuple[tuple[str, str | None, str, str], ...] = (
    ("functions.ingest.s3_source", "SignalObjectStore", "describe", "s3 head"),
    ("functions.ingest.s3_source", "SignalObjectStore", "download", "s3 download"),
    ("functions.ingest.repository.ledger", "ClaimLedger", "claim", "claim + run row"),
    ("functions.ingest.repository.runs", "RunHistory", "start_run", "claim + run row"),
    ("functions.ingest.chunks", None, "validate_batch", "validate + normalise"),
    ("functions.ingest.chunks", None, "write_load_file", "render load file"),
    ("functions.ingest.repository.staging", "Staging", "load_staging_file", "LOAD DATA into staging"),
    ("functions.ingest.repository.staging", "Staging", "insert_staging_rows", "INSERT into staging"),
    ("functions.ingest.repository.signals", "SignalsTable", "load_signals_file", "LOAD DATA into the table (first load)"),
    ("functions.ingest.repository.signals", "SignalsTable", "insert_signal_rows", "INSERT into the table (first load)"),
    ("functions.ingest.repository.staging", "Staging", "insert_rejected_rows", "rejected rows"),
    ("functions.ingest.repository.ledger", "ClaimLedger", "renew_lease", "lease + progress"),
    ("functions.ingest.repository.staging", "Staging", "advance_progress", "lease + progress"),
    ("functions.ingest.repository.staging", "Staging", "staging_progress", "lease + progress"),
    ("functions.ingest.repository.staging", "Staging", "start_staging", "prepare staging partition"),
    ("functions.ingest.parquet_reader", "SignalFile", "duplicate_keys", "duplicate-key pass (pyarrow)"),
    ("functions.ingest.repository.staging", "Staging", "finish_staging", "lease + progress"),
    ("functions.ingest.repository.signals", "SignalsTable", "plan_publish", "publish: list new and changed rows"),
    ("functions.ingest.repository.signals", "SignalsTable", "list_changes", "publish: list new and changed rows"),
    ("functions.ingest.change_listing", "ChangeLister", "finish", "wait for the changes listed alongside staging"),
    ("functions.ingest.repository.ledger", "ClaimLedger", "last_completed_before", "guards' history"),
    ("functions.ingest.repository.ledger", "ClaimLedger", "newest_completed_date", "guards' history"),
    ("functions.ingest.repository.signals", "SignalsTable", "table_is_empty", "publish: is the table empty"),
    ("functions.ingest.repository.signals", "SignalsTable", "count_table", "publish: count the table (delete mode)"),
    ("functions.ingest.repository.signals", "SignalsTable", "update_changed", "publish: update changed rows"),
    ("functions.ingest.repository.signals", "SignalsTable", "insert_new", "publish: insert new rows"),
    ("functions.ingest.repository.absent_rows", "AbsentRows", "delete", "publish: delete missing rows"),
    ("functions.ingest.repository.signals", "SignalsTable", "discard_plan", "publish: drop the list"),
    ("functions.ingest.repository.ledger", "ClaimLedger", "complete", "complete + run row"),
    ("functions.ingest.repository.runs", "RunHistory", "finish_run", "complete + run row"),
    ("functions.ingest.repository.staging", "Staging", "drop_pass", "drop staging partition"),
    ("pymysql.connections", "Connection", "commit", "commit"),
    ("functions.ingest.change_detection", None, "validate_batch", "compare: validate + normalise"),
    ("functions.ingest.change_detection", None, "canonical_texts", "compare: fingerprint texts"),
    ("functions.ingest.change_detection", None, "fingerprints_of_texts", "compare: MD5 per row"),
    ("functions.ingest.change_detection", None, "spill_by_partition", "compare: spill to disk"),
    ("functions.ingest.repository.staging", "Staging", "count_staged", "compare: check a resumed pass"),
    ("functions.ingest.change_detection", None, "changed_share_of_a_sample", "compare: a sample says whether it pays"),
    ("functions.ingest.change_detection", None, "_spill_table", "compare: the table's side (the server's MD5, spilled)"),
)
_TIMED_GENERATORS: tuple[tuple[str, str, str, str], ...] = (
    ("functions.ingest.parquet_reader", "SignalFile", "batches", "read Parquet batches"),
)


class StepTimer:
    """Accumulates wall-clock seconds per named step."""

    BACKGROUND = " [other thread, overlaps]"

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.missing: list[str] = []
        self._local = threading.local()
        self._lock = threading.Lock()
        self._main = threading.main_thread()

    def _add(self, step: str, seconds: float) -> None:
        name = step if threading.current_thread() is self._main else step + self.BACKGROUND
        with self._lock:
            self.seconds[name] += seconds

    def timed(self, original: Callable[..., Any], step: str) -> Callable[..., Any]:
        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            depth = getattr(self._local, "depth", 0)
            if depth:
                return original(*args, **kwargs)
            self._local.depth = 1
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self._local.depth = 0
                self._add(step, time.perf_counter() - started)

        return wrapper

    def timed_generator(self, original: Callable[..., Iterator[Any]], step: str) -> Callable[..., Iterator[Any]]:
        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            iterator = iter(original(*args, **kwargs))
            while True:
                started = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    self._add(step, time.perf_counter() - started)
                    return
                self._add(step, time.perf_counter() - started)
                yield item

        return wrapper

    def install(self) -> None:
        """Wrap the sync's collaborators (call before the service is built)."""
        import importlib

        # The durable execution runs the handler on a thread of its own: the thread that calls
        # sync is the one whose steps do not overlap, whichever it is.
        service = importlib.import_module("functions.ingest.service").SyncService
        calls_sync = service.sync

        @functools.wraps(calls_sync)
        def sync(*args: Any, **kwargs: Any) -> Any:
            self._main = threading.current_thread()
            return calls_sync(*args, **kwargs)

        service.sync = sync

        for module_name, owner_name, attribute, step in _TIMED_CALLS:
            module = importlib.import_module(module_name)
            owner = getattr(module, owner_name) if owner_name else module
            if not hasattr(owner, attribute):
                self.missing.append(f"{module_name}.{owner_name or ''}.{attribute}")
                continue
            setattr(owner, attribute, self.timed(getattr(owner, attribute), step))
        for module_name, owner_name, attribute, step in _TIMED_GENERATORS:
            owner = getattr(importlib.import_module(module_name), owner_name)
            if not hasattr(owner, attribute):
                self.missing.append(f"{module_name}.{owner_name}.{attribute}")
                continue
            setattr(owner, attribute, self.timed_generator(getattr(owner, attribute), step))

    def breakdown(self, total_seconds: float) -> dict[str, float]:
        steps = {name: round(seconds, 3) for name, seconds in sorted(self.seconds.items(), key=lambda item: -item[1])}
        main_thread = sum(seconds for name, seconds in self.seconds.items() if not name.endswith(self.BACKGROUND))
        steps["other (main thread: glue, waits, guards, locks)"] = round(max(0.0, total_seconds - main_thread), 3)
        return steps
