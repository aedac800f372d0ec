"""How driver exceptions become TransientError or PermanentError."""

from __future__ import annotations

import pymysql
import pytest

from functions.shared.errors import PermanentError, TransientError, translate_errors


def closing_packet_on_a_dead_socket(code: int) -> None:
    """What PyMySQL raises when the connection dies mid LOAD DATA LOCAL: its `finally` writes
    the closing packet to the socket it has just dropped, over the real error."""
    try:
        raise pymysql.err.OperationalError(code, "MySQL server has gone away (BrokenPipeError(32, 'Broken pipe'))")
    finally:
        socket = None
        socket.sendall(b"")  # type: ignore[attr-defined]


def test_an_attribute_error_over_a_lost_connection_is_transient() -> None:
    expected = r"stage rows: connection lost during LOAD DATA LOCAL: \(2006"
    with pytest.raises(TransientError, match=expected) as raised, translate_errors("stage rows"):
        closing_packet_on_a_dead_socket(2006)
    assert isinstance(raised.value.__cause__, pymysql.err.OperationalError)


def test_any_other_attribute_error_is_left_alone() -> None:
    with pytest.raises(AttributeError), translate_errors("stage rows"):
        None.sendall(b"")  # type: ignore[attr-defined]


def test_a_refused_statement_is_permanent() -> None:
    with pytest.raises(PermanentError, match="publish: database error 1064"), translate_errors("publish"):
        raise pymysql.err.ProgrammingError(1064, "You have an error in your SQL syntax")


@pytest.mark.parametrize(
    "error",
    [
        pymysql.err.OperationalError(1153, "Got a packet bigger than 'max_allowed_packet' bytes"),
        pymysql.err.OperationalError(2020, "Got packet bigger than 'max_allowed_packet' bytes"),
    ],
    ids=["server_1153", "client_2020"],
)
def test_a_packet_too_large_is_permanent_and_says_so(error: pymysql.err.OperationalError) -> None:
    # Given a statement bigger than max_allowed_packet: sending it again cannot succeed
    expected = "record rejects: a packet was too large for max_allowed_packet"
    with pytest.raises(PermanentError, match=expected) as raised, translate_errors("record rejects"):
        raise error
    assert not raised.value.retryable and isinstance(raised.value.__cause__, pymysql.err.OperationalError)


def test_a_lost_connection_stays_transient() -> None:
    with pytest.raises(TransientError, match="database error 2013"), translate_errors("stage rows"):
        raise pymysql.err.OperationalError(2013, "Lost connection to server during query")


def test_a_read_only_server_is_transient() -> None:
    # Given the instance the endpoint reached is read-only for now: an RDS blue/green switchover sets the
    # old (blue) primary read-only, and a client whose DNS answer is a few seconds old still reaches it
    # (measured on MariaDB 10.11 with SET GLOBAL read_only=1: an INSERT by a non-admin account answers 1290)
    refused = pymysql.err.OperationalError(
        1290, "The MariaDB server is running with the --read-only option so it cannot execute this statement"
    )
    # Then the step is retried (the endpoint soon reaches the writable primary), not dead-lettered
    with pytest.raises(TransientError, match="database error 1290"), translate_errors("publish"):
        raise refused
