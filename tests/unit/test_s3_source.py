"""How S3's answers become errors (botocore's Stubber plays S3; bodies are botocore's own StreamingBody)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from functions.ingest.s3_source import ObjectInfo, SignalObjectStore
from functions.shared.errors import MissingObject, NoSpace, PermanentError, TransientError

KEY = "passive_upsell_signals/dt=2026-01-30/data.parquet"


@pytest.mark.parametrize(
    ("code", "status", "error", "says"),
    [
        ("404", 404, MissingObject, f"^no file at s3://b/{KEY}$"),
        ("403", 403, MissingObject, "S3 answered 403: missing, or not readable"),
        ("SlowDown", 503, TransientError, "SlowDown"),
        ("InternalError", 500, TransientError, "InternalError"),
        ("InvalidBucketName", 400, PermanentError, "InvalidBucketName"),
    ],
)
def test_head_answers_are_translated(code: str, status: int, error: type[Exception], says: str) -> None:
    client = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as s3:
        s3.add_client_error("head_object", service_error_code=code, http_status_code=status)
        with pytest.raises(error, match=says):
            SignalObjectStore(client, "b").describe(KEY)


CONTENT = b"PAR1" + bytes(range(256)) * 64 + b"PAR1"
MD5_ETAG = hashlib.md5(CONTENT, usedforsecurity=False).hexdigest()


def s3_client() -> Any:
    return boto3.client("s3", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")


def answer_get_with(s3: Stubber, body: bytes, *, content_length: int, etag: str = MD5_ETAG) -> None:
    """Queue a GET whose body stream holds `body` while its Content-Length says `content_length`."""
    s3.add_response(
        "get_object",
        {"Body": StreamingBody(io.BytesIO(body), content_length), "ContentLength": content_length, "ETag": f'"{etag}"'},
        {"Bucket": "b", "Key": KEY, "IfMatch": f'"{etag}"', "ChecksumMode": "ENABLED"},
    )


def test_a_body_cut_short_is_transient_and_leaves_no_file(tmp_path: Path) -> None:
    # Given a GET whose body ends halfway through its Content-Length
    client = s3_client()
    destination = tmp_path / "data.parquet"
    with Stubber(client) as s3:
        answer_get_with(s3, CONTENT[: len(CONTENT) // 2], content_length=len(CONTENT))
        # When the object is downloaded, Then the broken transfer is transient
        with pytest.raises(TransientError, match="broken transfer"):
            SignalObjectStore(client, "b").download(ObjectInfo("b", KEY, MD5_ETAG, len(CONTENT)), destination)
    # And nothing is left to be opened by a retry: no file, no partial one
    assert list(tmp_path.iterdir()) == []


def test_a_body_garbled_in_transit_is_transient(tmp_path: Path) -> None:
    # Given a GET whose bytes have the object's length but not its MD5 (a single-part ETag)
    client = s3_client()
    garbled = bytes([CONTENT[0] ^ 0xFF]) + CONTENT[1:]
    with Stubber(client) as s3:
        answer_get_with(s3, garbled, content_length=len(CONTENT))
        # When it is downloaded, Then the mismatch is a transient fault, and no file is left
        with pytest.raises(TransientError, match=f"garbled: its MD5 is [0-9a-f]{{32}}, the ETag says {MD5_ETAG}"):
            SignalObjectStore(client, "b").download(ObjectInfo("b", KEY, MD5_ETAG, len(CONTENT)), tmp_path / "data.parquet")
    assert list(tmp_path.iterdir()) == []


def test_a_complete_download_is_renamed_into_place(tmp_path: Path) -> None:
    client = s3_client()
    destination = tmp_path / "data.parquet"
    with Stubber(client) as s3:
        answer_get_with(s3, CONTENT, content_length=len(CONTENT))
        SignalObjectStore(client, "b").download(ObjectInfo("b", KEY, MD5_ETAG, len(CONTENT)), destination)
    assert list(tmp_path.iterdir()) == [destination]
    assert destination.read_bytes() == CONTENT


def test_too_little_free_space_is_no_space_before_any_get(tmp_path: Path) -> None:
    # Given a work dir with 1 MiB free, and a 900 KiB object whose load files need 200 KiB more
    client = s3_client()
    store = SignalObjectStore(client, "b", reserve_bytes=200 << 10, free=lambda _directory: 1 << 20)
    info = ObjectInfo("b", KEY, MD5_ETAG, 900 << 10)
    # When it is downloaded, Then it fails for good, naming the place, the figures and the setting
    with Stubber(client) as s3, pytest.raises(NoSpace) as raised:
        store.download(info, tmp_path / "data.parquet")
    message = str(raised.value)
    assert f"in {tmp_path} " in message
    assert f"{1 << 20} bytes free, needs {(900 << 10) + (200 << 10)} bytes" in message
    assert "ephemeralStorageMb" in message
    s3.assert_no_pending_responses()  # no GET was queued, and none was made: Stubber raises on any
    assert list(tmp_path.iterdir()) == []


def test_a_body_shorter_than_the_object_is_transient_even_when_no_md5_can_check_it(tmp_path: Path) -> None:
    # Given a multipart object (its ETag is no MD5) whose GET ends, cleanly, short of the size HEAD gave
    client = s3_client()
    multipart_etag = "0123456789abcdef0123456789abcdef-2"
    short = CONTENT[: len(CONTENT) // 2]
    with Stubber(client) as s3:
        answer_get_with(s3, short, content_length=len(short), etag=multipart_etag)
        # When it is downloaded, Then the size check alone catches it, and nothing is left to read
        with pytest.raises(TransientError, match=f"broke off: {len(short)} bytes of {len(CONTENT)} received"):
            SignalObjectStore(client, "b").download(ObjectInfo("b", KEY, multipart_etag, len(CONTENT)), tmp_path / "data.parquet")
    assert list(tmp_path.iterdir()) == []
