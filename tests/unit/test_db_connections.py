"""Powers only where used: LOCAL INFILE sends only the offered file; no unverified remote server."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

import pytest

import functions.shared.db as db_module
from functions.shared.db import connect, offering_local_file
from functions.shared.errors import InsecureConnection, LocalFileRefused, TransientError
from functions.shared.settings import DatabaseSettings
from tests.fake_mysql import rogue_server

SECRET = b"DB_PASSWORD=hunter2-not-for-the-server\n"


def settings_for(host: str, port: int = 3306, tls_ca_file: str | None = None) -> DatabaseSettings:
    return DatabaseSettings(
        host=host,
        port=port,
        user="ingest",
        password="password",
        name="upsell_signals",
        secret_arn=None,
        tls_ca_file=tls_ca_file,
        connect_timeout_seconds=5,
        idle_timeout_seconds=120,
    )


def a_load_file(tmp_path: Path) -> Path:
    load_file = tmp_path / "upsell-signals.load0.tsv"
    load_file.write_bytes(b"1\tcompany-1\n")
    return load_file


@pytest.mark.parametrize("wanted", ["/proc/self/environ", "secret"])
def test_a_server_asking_for_a_file_it_was_not_offered_gets_nothing(wanted: str, tmp_path: Path) -> None:
    # Given a staging connection to a rogue server, loading a load file this pass wrote
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET)
    asked_for = str(secret_file) if wanted == "secret" else wanted
    load_file = a_load_file(tmp_path)
    with rogue_server(trigger=b"LOAD DATA", wanted_file=asked_for.encode()) as server:
        connection = connect(settings_for("127.0.0.1", server.port), local_infile=True)

        # When the server answers the LOAD DATA LOCAL with a request for another file
        with (
            pytest.raises(LocalFileRefused, match=f"server asked for '{asked_for}', which this pass did not write"),
            offering_local_file(connection, load_file),
            connection.cursor() as cursor,
        ):
            cursor.execute("LOAD DATA LOCAL INFILE %s INTO TABLE upsell_signal_staging", (str(load_file),))

        # Then not one byte of any file reached it, and the connection is closed
        assert server.asked.wait(5) and server.hung_up.wait(5)
        assert server.received_file == b""
        assert not connection.open


def test_a_server_asking_during_another_statement_gets_nothing(tmp_path: Path) -> None:
    # Given a staging connection with nothing offered (no LOAD DATA running)
    with rogue_server(trigger=b"SELECT", wanted_file=b"/proc/self/environ") as server:
        connection = connect(settings_for("127.0.0.1", server.port), local_infile=True)
        # When a plain query is answered with a file request, Then it is refused unsent
        with pytest.raises(LocalFileRefused), connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        assert server.hung_up.wait(5) and server.received_file == b""


def test_the_offered_file_is_sent(tmp_path: Path) -> None:
    # Given a staging connection loading a load file, When the server asks for that very file
    load_file = a_load_file(tmp_path)
    with rogue_server(trigger=b"LOAD DATA", wanted_file=str(load_file).encode()) as server:
        connection = connect(settings_for("127.0.0.1", server.port), local_infile=True)
        with offering_local_file(connection, load_file), connection.cursor() as cursor:
            cursor.execute("LOAD DATA LOCAL INFILE %s INTO TABLE upsell_signal_staging", (str(load_file),))
        connection.close()
        # Then it gets the file's bytes: the guard refuses other files, not loads
        assert server.hung_up.wait(5)
        assert server.received_file == load_file.read_bytes()


@pytest.fixture
def connection_attempts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Every TCP connection PyMySQL tries to open; each is refused, as by a closed port."""
    attempts: list[tuple[Any, ...]] = []

    def refuse(address: tuple[str, int], *_args: Any, **_kwargs: Any) -> socket.socket:
        attempts.append(address)
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


@pytest.mark.parametrize("host", ["db.example.com", "10.0.0.5", "192.0.2.1", "2001:db8::1", "127.0.0.1.example.com"])
def test_a_remote_host_without_a_ca_is_refused_before_any_traffic(host: str, connection_attempts: list[tuple[Any, ...]]) -> None:
    with pytest.raises(InsecureConnection, match=f"refusing to connect to {host}:3306 .*set DB_TLS_CA_FILE"):
        connect(settings_for(host))
    assert connection_attempts == []


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "localhost", "::1"])
def test_a_loopback_host_without_a_ca_is_reached(host: str, connection_attempts: list[tuple[Any, ...]]) -> None:
    with pytest.raises(TransientError, match="connect to the database: database error 2003"):
        connect(settings_for(host))
    assert connection_attempts == [(host, 3306)]


def test_a_remote_host_with_a_ca_is_reached(connection_attempts: list[tuple[Any, ...]]) -> None:
    rds_ca_bundle = Path(__file__).resolve().parents[2] / "layers" / "deps" / "certs" / "rds-ca-bundle.pem"
    with pytest.raises(TransientError, match="database error 2003"):
        connect(settings_for("db.example.com", tls_ca_file=str(rds_ca_bundle)))
    assert connection_attempts == [("db.example.com", 3306)]


def test_a_ca_file_makes_the_connection_verify_the_certificate_and_the_host_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a remote host and the RDS CA bundle, When a connection is opened
    rds_ca_bundle = Path(__file__).resolve().parents[2] / "layers" / "deps" / "certs" / "rds-ca-bundle.pem"
    seen: dict[str, Any] = {}

    def capture(self: Any, **kwargs: Any) -> None:
        seen.update(kwargs)

    monkeypatch.setattr(db_module.GuardedConnection, "__init__", capture)
    connect(settings_for("db.example.com", tls_ca_file=str(rds_ca_bundle)))
    # Then TLS checks the server's certificate against that CA and its name against the host
    context = seen["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
