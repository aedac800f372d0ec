"""A server certificate the CA bundle does not verify is a setting to fix, not an outage to wait out."""

from __future__ import annotations

import socket
import ssl
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymysql.constants import CLIENT

from functions.shared.db import connect
from functions.shared.errors import DatabaseUnreachable, IngestError
from tests.fake_mysql import CAPABILITIES, SERVER_STATUS_AUTOCOMMIT, UTF8MB4_GENERAL_CI, _packet
from tests.unit.test_db_connections import settings_for

RDS_CA_BUNDLE = Path(__file__).resolve().parents[2] / "layers" / "deps" / "certs" / "rds-ca-bundle.pem"


def _tls_handshake_packet() -> bytes:
    capabilities = CAPABILITIES | CLIENT.SSL
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


@pytest.fixture
def server_with_an_untrusted_certificate(tmp_path: Path) -> Iterator[int]:
    """A MariaDB-speaking server offering TLS with a self-signed certificate (none of RDS's CAs signed it)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                continue
            with client:
                client.settimeout(5)
                try:
                    client.sendall(_tls_handshake_packet())
                    client.recv(4 + 32)  # the client's SSLRequest
                    context.wrap_socket(client, server_side=True).close()
                except (OSError, ssl.SSLError):
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_a_certificate_the_bundle_does_not_verify_is_not_an_unreachable_database(server_with_an_untrusted_certificate: int) -> None:
    # Given DB_TLS_CA_FILE (the RDS bundle) and a server whose certificate it does not verify: an
    # imported endpoint given as a CNAME of its own, or an instance moved to a CA the shipped bundle lacks
    settings = settings_for("127.0.0.1", server_with_an_untrusted_certificate, tls_ca_file=str(RDS_CA_BUNDLE))
    # When a function connects
    with pytest.raises(IngestError) as raised:
        connect(settings)
    # Then it fails as what it is: not DatabaseUnreachable (PyMySQL wraps the SSLCertVerificationError,
    # an OSError, in 2003 "Can't connect"), which the in-process retry waits out for 150 s and Lambda retries twice more
    assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value)
    assert not isinstance(raised.value, DatabaseUnreachable), f"classified {type(raised.value).__name__}: {raised.value}"
    assert not raised.value.retryable
