"""The parent's own database work, never timed: fresh databases, snapshots, what a scenario wrote."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pymysql

from functions.ingest.columns import COLUMN_NAMES
from functions.migrate.files import discover_migrations
from functions.migrate.migrator import Migrator
from functions.shared.db import connect
from functions.shared.settings import DatabaseSettings

TARGET = "company_upsell_signals"
SNAPSHOT = "bench_day_one_snapshot"
SETTLE_TIMEOUT_SECONDS = 300
# Every column, the row ids and timestamps included, so a day two meets day one's rows exactly.
_STORED = ", ".join(("id", *COLUMN_NAMES, "created_at", "updated_at"))
SETTLED_DIRTY_PAGES = 200  # of the 1 GB buffer pool's ~65,000 pages
SETTLED_HISTORY_LENGTH = 1_000  # undo records purge has yet to clear
# Pages read from disk because the buffer pool lacked them, and the server's I/O: where a
# larger file's time goes once its table and indexes outgrow the pool.
SERVER_COUNTERS = (
    "Innodb_buffer_pool_reads",
    "Innodb_buffer_pool_read_requests",
    "Innodb_data_read",
    "Innodb_data_written",
    "Innodb_pages_written",
)


class BenchDatabase:
    """One contender's database on the throwaway server."""

    def __init__(self, server: DatabaseSettings, name: str) -> None:
        self.server = server
        self.name = name
        self.settings = replace(server, name=name)

    @contextmanager
    def _connection(self, database: str | None = None) -> Iterator[pymysql.Connection[Any]]:
        connection = connect(self.settings, database=database)
        connection.autocommit(True)
        try:
            yield connection
        finally:
            connection.close()

    def _execute(self, *statements: str) -> None:
        with self._connection() as connection, connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)

    def create(self) -> None:
        """A new, empty database with every migration applied."""
        with self._connection(database="") as admin, admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{self.name}`")
            cursor.execute(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        connection = connect(self.settings)
        try:
            Migrator(connection, discover_migrations()).up()
        finally:
            connection.close()

    def drop(self) -> None:
        with self._connection(database="") as admin, admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{self.name}`")

    def snapshot(self) -> None:
        """Keep the day-one table so each day-two shape starts from the same state."""
        self._execute(
            f"DROP TABLE IF EXISTS {SNAPSHOT}",
            f"CREATE TABLE {SNAPSHOT} LIKE {TARGET}",
            f"INSERT INTO {SNAPSHOT} ({_STORED}) SELECT {_STORED} FROM {TARGET}",
        )

    def restore(self) -> None:
        """Put the day-one table back (ids, created_at and updated_at included)."""
        self._execute(f"TRUNCATE TABLE {TARGET}", f"INSERT INTO {TARGET} ({_STORED}) SELECT {_STORED} FROM {SNAPSHOT}")

    def settle(self) -> float:
        """Wait until the server has flushed and purged what earlier (untimed) work left; returns seconds.

        A restore of a million rows, or the previous scenario's writes, leave dirty pages
        and undo records that the server works off in the background for a minute or
        more. Timed while that runs, a scenario would pay for the one before it (and a
        short scenario proportionally more than a long one). Flushing is hurried by
        lowering innodb_max_dirty_pages_pct for the wait, then put back.
        """
        started = time.perf_counter()
        with self._connection(database="") as connection, connection.cursor() as cursor:
            cursor.execute("SELECT @@GLOBAL.innodb_max_dirty_pages_pct")
            row = cursor.fetchone()
            assert row is not None
            cursor.execute("SET GLOBAL innodb_max_dirty_pages_pct = 0")
            try:
                while time.perf_counter() - started < SETTLE_TIMEOUT_SECONDS:
                    cursor.execute(
                        "SHOW GLOBAL STATUS WHERE Variable_name IN "
                        "('Innodb_buffer_pool_pages_dirty', 'Innodb_history_list_length')"
                    )
                    status = {name: int(value) for name, value in cursor.fetchall()}
                    if (
                        status["Innodb_buffer_pool_pages_dirty"] <= SETTLED_DIRTY_PAGES
                        and status["Innodb_history_list_length"] <= SETTLED_HISTORY_LENGTH
                    ):
                        break
                    time.sleep(0.5)
                else:
                    print(f"bench: the server did not settle within {SETTLE_TIMEOUT_SECONDS} s: {status}", flush=True)
            finally:
                cursor.execute("SET GLOBAL innodb_max_dirty_pages_pct = %s", (row[0],))
        return time.perf_counter() - started

    def now(self) -> dt.datetime:
        with self._connection() as connection, connection.cursor() as cursor:
            cursor.execute("SELECT NOW()")
            row = cursor.fetchone()
        assert row is not None
        value: dt.datetime = row[0]
        return value

    def table_state(self, since: dt.datetime) -> dict[str, int]:
        """Rows in the table, rows whose updated_at moved after `since`, and the next auto-increment id."""
        with self._connection() as connection, connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*), COALESCE(SUM(updated_at > %s), 0), COALESCE(MAX(id), 0) FROM {TARGET}", (since,))
            counts = cursor.fetchone()
            cursor.execute(
                "SELECT AUTO_INCREMENT FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
                (self.name, TARGET),
            )
            auto_increment = cursor.fetchone()
        assert counts is not None
        return {
            "table_rows": int(counts[0]),
            "rows_touched": int(counts[1]),
            "max_id": int(counts[2]),
            "next_auto_increment": int(auto_increment[0]) if auto_increment and auto_increment[0] is not None else 0,
        }

    def server_counters(self) -> dict[str, int]:
        """The server's cumulative I/O counters (SERVER_COUNTERS); a scenario's share is the difference."""
        with self._connection() as connection, connection.cursor() as cursor:
            cursor.execute(
                f"SHOW GLOBAL STATUS WHERE Variable_name IN ({', '.join(['%s'] * len(SERVER_COUNTERS))})", SERVER_COUNTERS
            )
            return {str(name): int(value) for name, value in cursor.fetchall()}

    def sizes_mb(self) -> dict[str, float]:
        """The table's data and index sizes and the buffer pool's, to say when the work stops fitting in memory."""
        with self._connection() as connection, connection.cursor() as cursor:
            cursor.execute("ANALYZE TABLE " + TARGET)
            cursor.fetchall()
            cursor.execute(
                "SELECT data_length, index_length FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
                (self.name, TARGET),
            )
            data, index = cursor.fetchone() or (0, 0)
            cursor.execute("SELECT @@innodb_buffer_pool_size")
            (pool,) = cursor.fetchone() or (0,)
        return {
            "table_data_mb": round(int(data) / 2**20),
            "table_indexes_mb": round(int(index) / 2**20),
            "buffer_pool_mb": round(int(pool) / 2**20),
        }

    def checksum(self) -> tuple[int, int]:
        """(rows, sum of row CRC32s) of the table, as bench.fingerprint computes them from a file."""
        from bench.fingerprint import TABLE_STATE_SQL

        with self._connection() as connection, connection.cursor() as cursor:
            cursor.execute(TABLE_STATE_SQL)
            row = cursor.fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def server_version(self) -> str:
        with self._connection(database="") as connection, connection.cursor() as cursor:
            cursor.execute("SELECT VERSION()")
            row = cursor.fetchone()
        return str(row[0]) if row else "?"
