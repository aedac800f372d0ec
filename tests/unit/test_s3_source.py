"""How S3's answers become errors (botocore's Stubber plays S3)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from functions.ingest.s3_source import SignalObjectStore
from functions.shared.errors import MissingObject, PermanentError, TransientError

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
