"""Every SQL statement of the ingest, parameterised; knows nothing of Parquet or Lambda.

One small class per table family, all over one session (one connection):

    session.py   Session: transactions, reads, named locks, LOAD DATA / multi-row INSERT plumbing
    names.py     table, lock and partition names, the server's error codes
    ledger.py    ClaimLedger: the metadata row (claim, renew, check_holder, hand_over, complete, fail, release)
    runs.py      RunHistory: one row per invocation
    staging.py   Staging: partitions, progress, staged and rejected rows, drop_pass and abandoned staging
    signals.py   SignalsTable: the first load, and the publish (change list, plan, update, insert)
    absent_rows.py AbsentRows: delete mode's delete of the companies the file no longer carries
    newer_keys.py NewerKeys: what newer completed dates' files carry, taken out of an older date's publish
    fingerprints.py TableFingerprints: the table's row fingerprints, for a compare before staging

Methods do not commit (partition DDL aside): the caller decides the unit of work with
`transaction()`. Identifiers that are not parameters (column names, the partition name)
come from our own constants or from a validated date, never from input.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql

from functions.ingest.repository.absent_rows import AbsentRows
from functions.ingest.repository.fingerprints import TableFingerprints
from functions.ingest.repository.ledger import ClaimLedger, CompletedSync, PublishedDate
from functions.ingest.repository.newer_keys import NewerKeys
from functions.ingest.repository.runs import RunHistory
from functions.ingest.repository.session import Session
from functions.ingest.repository.signals import PublishPlan, SignalsTable
from functions.ingest.repository.staging import Staging, StagingProgress

__all__ = [
    "AbsentRows",
    "ClaimLedger",
    "CompletedSync",
    "PublishPlan",
    "PublishedDate",
    "Repository",
    "RunHistory",
    "Session",
    "SignalsTable",
    "Staging",
    "StagingProgress",
    "TableFingerprints",
]


class Repository:
    """The table families of the ingest over one session: what one step of a sync works with."""

    def __init__(self, connection: pymysql.Connection[Any]) -> None:
        self.session = Session(connection)
        self.ledger = ClaimLedger(self.session)
        self.runs = RunHistory(self.session)
        self.staging = Staging(self.session)
        self.signals = SignalsTable(self.session)
        self.absent_rows = AbsentRows(self.session)
        self.newer_keys = NewerKeys(self.session)
        self.fingerprints = TableFingerprints(self.session)

    @property
    def connection(self) -> pymysql.Connection[Any]:
        return self.session.connection

    @contextmanager
    def transaction(self, action: str, *, read_committed: bool = False) -> Iterator[None]:
        """See Session.transaction."""
        with self.session.transaction(action, read_committed=read_committed):
            yield

    def close(self) -> None:
        self.session.close()
