"""Local stand-ins that other processes can reach: moto's S3 server on loopback, and proxies that break the way to it or to the database."""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from moto.server import ThreadedMotoServer


def free_port() -> int:
    """Ask the kernel for a free TCP port on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on a free loopback port for the block; yields its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


Fault = Literal["reset", "close", "garble"]


class _Proxy:
    """A TCP proxy on loopback: each connection it accepts gets one of its own to `upstream`,
    and both are handed to `_relay` on a thread of their own, then closed.

    Subclasses set their own state before calling this constructor: the accept loop starts
    in it. `close()` stops accepting; connections already open run on.
    """

    def __init__(self, upstream: tuple[str, int], *, port: int = 0) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", port))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            server = socket.create_connection(self._upstream)
            threading.Thread(target=self._forward, args=(client, server), daemon=True).start()

    def _forward(self, client: socket.socket, server: socket.socket) -> None:
        try:
            self._relay(client, server)
        except ConnectionError:
            return  # one side went away: close the other, as a network would
        finally:
            client.close()
            server.close()

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        """Pass one connection's bytes between `client` and `server`; return to close both."""
        raise NotImplementedError


class FaultyProxy(_Proxy):
    """A TCP proxy on loopback in front of an HTTP endpoint that damages the server's answers.

    The first `faults` connections whose answers pass `after_bytes` bytes are damaged there:
    "reset" (the connection is reset, as a network break does mid-body), "close" (closed
    cleanly, short of the Content-Length) or "garble" (one byte flipped, the rest passed on).
    Later traffic passes untouched.
    """

    def __init__(self, upstream: str, *, after_bytes: int, fault: Fault, faults: int = 1) -> None:
        host, port = upstream.removeprefix("http://").rsplit(":", 1)
        self._after_bytes = after_bytes
        self._faults_left = faults
        self._fault = fault
        self._lock = threading.Lock()
        self.faults_made = 0
        super().__init__((host, int(port)))
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def _take_fault(self) -> bool:
        with self._lock:
            if self._faults_left == 0:
                return False
            self._faults_left -= 1
            self.faults_made += 1
            return True

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        """Both directions of one connection, in one thread, so that a reset is a reset."""
        answered = 0
        while True:
            readable, _, _ = select.select([client, server], [], [])
            if client in readable:
                if not (data := client.recv(65536)):
                    return
                server.sendall(data)
            if server in readable:
                if not (data := server.recv(65536)):
                    return
                if answered <= self._after_bytes < answered + len(data) and self._take_fault():
                    at = self._after_bytes - answered
                    if self._fault != "garble":
                        client.sendall(data[:at])
                        if self._fault == "reset":
                            # Linger 0: close() sends RST instead of FIN.
                            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        return
                    data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
                client.sendall(data)
                answered += len(data)


@contextmanager
def faulty_proxy(upstream: str, *, after_bytes: int, fault: Fault, faults: int = 1) -> Iterator[FaultyProxy]:
    """A FaultyProxy in front of `upstream` for the block."""
    proxy = FaultyProxy(upstream, after_bytes=after_bytes, fault=fault, faults=faults)
    try:
        yield proxy
    finally:
        proxy.close()


class BlackHoleProxy(_Proxy):
    """A TCP proxy on loopback in front of a server that goes silent mid-statement on one connection.

    The `after`+1-th time a client sends bytes containing `trigger`, those bytes are passed on
    (the server starts the statement) and from then on nothing more is forwarded on that
    connection, either way: what arrives is read and dropped, and both sockets stay open, as
    after a partition or a dead middlebox. Neither side is told; the server's socket is closed
    only when the server closes it itself (`server_hung_up`). Other connections pass untouched.
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, trigger: bytes, after: int = 0) -> None:
        self._trigger = trigger
        self._seen = 0
        self._after = after
        self._lock = threading.Lock()
        self.black_holed = threading.Event()
        self.black_holed_at: float | None = None  # time.monotonic()
        self.server_hung_up = threading.Event()
        super().__init__((upstream_host, upstream_port))

    def _is_the_one(self, data: bytes) -> bool:
        with self._lock:
            if self.black_holed.is_set() or self._trigger not in data:
                return False
            self._seen += 1
            if self._seen <= self._after:
                return False
            self.black_holed_at = time.monotonic()
            self.black_holed.set()
            return True

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        silent = False
        open_sides = [client, server]
        while open_sides:
            readable, _, _ = select.select(open_sides, [], [])
            for side in readable:
                try:
                    data = side.recv(65536)
                except ConnectionResetError:
                    data = b""  # a reset is a hang-up too
                if not data:
                    if side is server and silent:
                        self.server_hung_up.set()
                    if not silent:
                        return  # a normal close: close the other side too
                    open_sides.remove(side)  # silent: the other side is not told
                    continue
                if silent:
                    continue  # dropped
                (server if side is client else client).sendall(data)
                silent = side is client and self._is_the_one(data)


@contextmanager
def black_hole_proxy(upstream_host: str, upstream_port: int, *, trigger: bytes, after: int = 0) -> Iterator[BlackHoleProxy]:
    """A BlackHoleProxy in front of the server for the block."""
    proxy = BlackHoleProxy(upstream_host, upstream_port, trigger=trigger, after=after)
    try:
        yield proxy
    finally:
        proxy.close()


class Forwarder(_Proxy):
    """A plain TCP route on loopback to `upstream`, on a port of the caller's choosing.

    A client told to use `port` finds nothing there (connection refused, as from a database
    that is down) until the route is opened, and every byte passes both ways once it is.
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, port: int) -> None:
        super().__init__((upstream_host, upstream_port), port=port)

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        while True:
            readable, _, _ = select.select([client, server], [], [])
            for side in readable:
                if not (data := side.recv(65536)):
                    return
                (server if side is client else client).sendall(data)


@contextmanager
def forwarder(upstream_host: str, upstream_port: int, *, port: int) -> Iterator[Forwarder]:
    """A Forwarder from `port` to the upstream for the block."""
    route = Forwarder(upstream_host, upstream_port, port=port)
    try:
        yield route
    finally:
        route.close()


class SlowLink(_Proxy):
    """A TCP route on loopback to `upstream` that holds every request `latency_seconds` before passing it on.

    A network farther from the database than loopback: each round trip costs the latency, so
    work of many small statements (a staging chunk's commit) slows, and one long statement
    (a publish) hardly does.
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, latency_seconds: float) -> None:
        self._latency_seconds = latency_seconds
        super().__init__((upstream_host, upstream_port))

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        while True:
            readable, _, _ = select.select([client, server], [], [])
            if client in readable:
                if not (data := client.recv(65536)):
                    return
                time.sleep(self._latency_seconds)
                server.sendall(data)
            if server in readable:
                if not (data := server.recv(65536)):
                    return
                client.sendall(data)


@contextmanager
def slow_link(upstream_host: str, upstream_port: int, *, latency_seconds: float) -> Iterator[SlowLink]:
    """A SlowLink in front of the server for the block."""
    link = SlowLink(upstream_host, upstream_port, latency_seconds=latency_seconds)
    try:
        yield link
    finally:
        link.close()
