"""The heartbeat outlives a missed beat: it reconnects at the next one (a server restarting, a failover)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from functions.ingest.heartbeat import LeaseHeartbeat


def test_a_beat_missed_while_the_server_restarts_is_followed_by_a_reconnect_and_more_beats(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a database that refuses the first connection (restarting) and then answers
    beats: list[dt.date] = []

    class Answering:
        def __init__(self) -> None:
            self.ledger = self

        def keep_alive(self, sync_date: dt.date, _token: str, _lease: int) -> bool:
            beats.append(sync_date)
            return True

        def close(self) -> None:
            pass

    opened: list[str] = []

    def open_once_refused(_self: LeaseHeartbeat) -> Any:
        opened.append("open")
        if len(opened) == 1:
            raise OSError("connection refused: the server is restarting")
        return Answering()

    monkeypatch.setattr(LeaseHeartbeat, "_open", open_once_refused)
    # When a holder with a 0.3 s lease (a beat every 0.1 s) works for a second
    with LeaseHeartbeat(lambda: None, dt.date(2026, 1, 30), "token", 0.3):  # type: ignore[arg-type]
        time.sleep(1)
    # Then after the refused beat it reconnected and kept beating
    assert len(opened) == 2 and len(beats) >= 3
