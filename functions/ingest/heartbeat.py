"""The heartbeat that keeps a held date's lease short and alive, on a connection of its own.

A holder that dies without a word (Lambda's timeout mid-statement, an out-of-memory kill, a
lost sandbox) stops beating, and its lease lapses one lease later: before Lambda's first
retry of the event (`functions/shared/contract.py`). A holder that lives keeps the date
whatever its own connection is blocked on, because the beat does not wait on it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

import pymysql

from functions.ingest.repository import Repository
from functions.shared.contract import HEARTBEATS_PER_LEASE
from functions.shared.errors import IngestError

logger = logging.getLogger("upsell_signals.ingest")


class LeaseHeartbeat:
    """Renews the lease of `sync_date` for `holder_token` every lease / HEARTBEATS_PER_LEASE seconds until stopped."""

    def __init__(
        self,
        connect: Callable[[], pymysql.Connection[Any]],
        sync_date: dt.date,
        holder_token: str,
        lease_seconds: int,
    ) -> None:
        self._connect = connect
        self._sync_date = sync_date
        self._holder_token = holder_token
        self._lease_seconds = lease_seconds
        self._interval = lease_seconds / HEARTBEATS_PER_LEASE
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{sync_date}", daemon=True)

    def __enter__(self) -> LeaseHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        # Stopped before the handler returns: Lambda freezes a returned sandbox, threads and all.
        self._stopped.set()
        self._thread.join()

    def _beat(self) -> None:
        repository: Repository | None = None
        try:
            while not self._stopped.wait(self._interval):
                try:
                    repository = repository or self._open()
                    if not repository.ledger.keep_alive(self._sync_date, self._holder_token, self._lease_seconds):
                        # Either the sync has ended the claim itself (completed, released) while the
                        # beat ran on through its clean-up, or another execution took the date over,
                        # which the sync finds at its next fenced write (ClaimLost) and the taker logs.
                        return
                except (IngestError, pymysql.MySQLError, OSError) as error:
                    # The server may be restarting: the lease holds for two more beats; reconnect at the next.
                    logger.warning("heartbeat of %s missed: %s", self._sync_date, error)
                    if repository is not None:
                        repository.close()
                    repository = None
        finally:
            if repository is not None:
                repository.close()

    def _open(self) -> Repository:
        repository = Repository(self._connect())
        # A beat never queues long behind a transaction holding the row (a chunk's commit, the publish's end).
        repository.session.execute("SET SESSION innodb_lock_wait_timeout = %s", (max(1, int(self._interval)),))
        repository.connection.autocommit(True)
        return repository
