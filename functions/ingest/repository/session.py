"""One database session: transactions, reads, named locks and the bulk-load plumbing.

Nothing here commits by itself: the caller decides the unit of work with `transaction()`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pymysql
from pymysql.constants import SERVER_STATUS

from functions.ingest.insert_statements import insert_statements
from functions.ingest.repository.names import DUPLICATE_KEY, NO_PARTITION
from functions.shared.db import fetch_dicts, offering_local_file
from functions.shared.errors import PermanentError, TransientError, translate_errors
from functions.shared.locks import get_lock, named_lock

logger = logging.getLogger("upsell_signals.ingest")


def raise_load_warnings(warnings: list[tuple[int, str]]) -> None:
    """Name what LOAD DATA LOCAL turned into warnings: a lost partition or a second writer are not validation gaps."""
    text = "; ".join(f"{code} {message}" for code, message in warnings)
    codes = {code for code, _ in warnings}
    if NO_PARTITION in codes:
        raise TransientError(f"the date's staging partition is gone (another execution took the date over?): {text}")
    if DUPLICATE_KEY in codes:
        raise TransientError(f"rows already staged by another writer (another execution staging the date?): {text}")
    raise PermanentError(f"load changed values (a validation gap): {text}")


class Session:
    """A connection and the ways every table family uses it."""

    def __init__(self, connection: pymysql.Connection[Any]) -> None:
        self.connection = connection

    def close(self) -> None:
        self.connection.close()

    @contextmanager
    def kept_alive(self) -> Iterator[None]:
        """Keep the session from the server's idle timeout while the caller works elsewhere (a long
        compare); the caller must not use it in the block."""
        pinger = SessionPinger(self)
        pinger.start()
        try:
            yield
        finally:
            pinger.stop()

    @contextmanager
    def transaction(self, action: str, *, read_committed: bool = False) -> Iterator[None]:
        """Commit the block's statements together, or roll them back; errors translated.

        `read_committed` reads without locking rows (the session's default is REPEATABLE
        READ, under which INSERT ... SELECT locks every row it reads) for this one block.
        """
        with translate_errors(action):
            try:
                if read_committed:
                    self.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")  # the next transaction only
                self.connection.begin()
                yield
                self.connection.commit()
            except BaseException:
                if self.connection.open:
                    self.connection.rollback()
                raise

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        with self.connection.cursor() as cursor:
            return int(cursor.execute(sql, params))

    def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        return tuple(row) if row is not None else None

    def fetch_dict(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        with self.connection.cursor(pymysql.cursors.DictCursor) as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        return dict(row) if row is not None else None

    def fetch_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return fetch_dicts(self.connection, sql, params)

    @contextmanager
    def locked(self, name: str, timeout_seconds: int, action: str) -> Iterator[None]:
        """Hold a MariaDB named lock for the block (this session may hold it already); errors translated."""
        with translate_errors(action), named_lock(self.connection, name, timeout_seconds):
            yield

    def hold_lock(self, name: str, timeout_seconds: int, action: str) -> None:
        """Take a named lock for the rest of the session (ending it releases the lock); TransientError if it stays busy."""
        with translate_errors(action):
            if not get_lock(self.connection, name, timeout_seconds):
                raise TransientError(f"lock {name!r} still held by another session after {timeout_seconds}s")

    def load_file(self, sql: str, path: Path, params: Sequence[Any], expected_rows: int) -> None:
        """Run a LOAD DATA LOCAL INFILE of `path`; any warning or a row count off is an error."""
        # The connection sends `path` only, and only while this statement runs.
        with offering_local_file(self.connection, path), self.connection.cursor() as cursor:
            loaded = cursor.execute(sql, params)
            # LOCAL turns conversion errors into warnings; any warning means a value was
            # changed on the way in, which validation exists to prevent.
            if cursor.warning_count:
                cursor.execute("SHOW WARNINGS LIMIT 5")
                raise_load_warnings([(int(row[1]), str(row[2])) for row in cursor.fetchall()])
        if loaded != expected_rows:
            raise PermanentError(f"load wrote {loaded} rows, expected {expected_rows}")

    def insert_rows(self, table: str, fixed: dict[str, Any], row_columns: Sequence[str], rows: pa.Table) -> None:
        """Multi-row INSERT of `rows` (the path where LOCAL INFILE is disabled), rendered column-wise."""
        # Values rendered by insert_statements from typed Arrow columns with PyMySQL's own
        # escaping rules (not parameters, so no per-value Python); identifiers are ours.
        status = self.connection.server_status  # type: ignore[attr-defined]  # kept current by every reply
        plain_quotes = bool(status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES)
        constants = {name: pa.scalar(value) for name, value in fixed.items()}
        statements = insert_statements(table, row_columns, rows, fixed=constants, no_backslash_escapes=plain_quotes)
        with self.connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)  # type: ignore[arg-type]  # bytes pass through PyMySQL unchanged
                if cursor.warning_count:  # a value changed on the way in, as load_file checks
                    cursor.execute("SHOW WARNINGS LIMIT 5")
                    raise_load_warnings([(int(row[1]), str(row[2])) for row in cursor.fetchall()])


class SessionPinger:
    """Pings a session from a thread of its own, three times per its idle timeout (`wait_timeout`),
    from start() to stop(): no other thread may use the session meanwhile.

    A failed ping is logged and ends the pings: the session's next statement meets the same
    error, and its caller handles it.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Begin; call it from the thread that last used the session."""
        row = self._session.fetch_one("SELECT @@SESSION.wait_timeout")
        interval = float(row[0]) / 3 if row else 1.0
        self._thread = threading.Thread(target=self._ping, args=(interval,), name="session-keep-alive", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End, and wait for a ping under way: never two users of one connection at once."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()

    def _ping(self, interval: float) -> None:
        while not self._stopped.wait(interval):
            try:
                self._session.connection.ping(reconnect=False)
            except pymysql.MySQLError as error:
                logger.warning("session keep-alive stopped: %s", error)
                return
