"""TLS to the database: a certificate the CA bundle does not verify is a setting to fix, not an outage to wait
out; and the checks are the same on Lambda's Python as on the tests'."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymysql.constants import CLIENT

from functions.shared.db import _tls_context, connect
from functions.shared.errors import DatabaseUnreachable, IngestError
from tests.fake_mysql import CAPABILITIES, handshake
from tests.unit.test_db_connections import settings_for

RDS_CA_BUNDLE = Path(__file__).resolve().parents[2] / "layers" / "deps" / "certs" / "rds-ca-bundle.pem"


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
                    client.sendall(handshake(CAPABILITIES | CLIENT.SSL))
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
    assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value) and "DB_TLS_CA_FILE" in str(raised.value)
    assert not isinstance(raised.value, DatabaseUnreachable), f"classified {type(raised.value).__name__}: {raised.value}"
    assert not raised.value.retryable


def _chain_whose_ca_marks_basic_constraints_non_critical(directory: Path) -> tuple[Path, Path, Path]:
    """A CA whose basicConstraints is present but not marked critical (RFC 5280 asks for critical, and
    strict checks refuse it otherwise), and a server certificate it signed for 127.0.0.1: (CA, certificate, key)."""
    ca_key, ca, key, request, cert = (directory / name for name in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    extensions = directory / "server.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1\nauthorityKeyIdentifier=keyid\n")
    for command in (
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=a CA of its own",
         "-addext", "basicConstraints=CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-keyout", str(ca_key), "-out", str(ca)],
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(request)],
        ["openssl", "x509", "-req", "-in", str(request), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
         "-days", "1", "-extfile", str(extensions), "-out", str(cert)],
    ):  # fmt: skip
        subprocess.run(command, check=True, capture_output=True)
    return ca, cert, key


def test_the_certificate_checks_are_the_same_on_lambdas_python_as_on_the_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Python 3.13's default context (Lambda's runtime), which adds VERIFY_X509_STRICT to the
    # defaults of 3.11 (the tests'), and a server whose chain verifies but is not strictly RFC 5280
    # (its CA's basicConstraints is not marked critical); RDS does not say its chains pass strict checks
    create_default_context = ssl.create_default_context

    def as_on_python_3_13(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        context = create_default_context(*args, **kwargs)
        context.verify_flags |= ssl.VERIFY_X509_STRICT | ssl.VERIFY_X509_PARTIAL_CHAIN
        return context

    monkeypatch.setattr(ssl, "create_default_context", as_on_python_3_13)
    ca, cert, key = _chain_whose_ca_marks_basic_constraints_non_critical(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = threading.Thread(target=lambda: _handshake_once(listener, server_context), daemon=True)
    accepted.start()

    # When a function's TLS context (the one connect() gives PyMySQL) shakes hands with it
    context = _tls_context(settings_for("127.0.0.1", tls_ca_file=str(ca)))
    assert context is not None
    try:
        with socket.create_connection(listener.getsockname(), timeout=5) as raw, context.wrap_socket(
            raw, server_hostname="127.0.0.1"
        ) as tls:
            peer = tls.getpeercert()
    finally:
        accepted.join(5)
        listener.close()

    # Then the chain and the host name are verified as on 3.11, without the stricter checks PyMySQL
    # also leaves out of the contexts it builds (PyMySQL#1198)
    assert peer is not None and ("IP Address", "127.0.0.1") in peer["subjectAltName"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname is True


def _handshake_once(listener: socket.socket, context: ssl.SSLContext) -> None:
    client, _ = listener.accept()
    with client:
        client.settimeout(5)
        try:
            with context.wrap_socket(client, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ssl.SSLError) as refused:
            print(f"the server side of the handshake ended: {refused}")  # the client's assertion says why
