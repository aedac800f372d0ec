"""The daily object in S3: what it is (ETag, size) and a local copy to read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from functions.shared.errors import MissingObject, StaleObject, translate_errors

DOWNLOAD_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class ObjectInfo:
    """The identity of one version of the object: a new export has a new ETag."""

    bucket: str
    key: str
    etag: str
    size_bytes: int

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class SignalObjectStore:
    """Reads signal files from one bucket through a boto3 S3 client."""

    def __init__(self, s3_client: Any, bucket: str) -> None:
        self._s3 = s3_client
        self._bucket = bucket

    def describe(self, key: str) -> ObjectInfo:
        """HEAD the object; MissingObject says plainly which file is absent."""
        url = f"s3://{self._bucket}/{key}"
        with translate_errors(f"read {url}"):
            try:
                head = self._s3.head_object(Bucket=self._bucket, Key=key)
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code")
                if code in ("404", "NoSuchKey", "NotFound"):
                    raise MissingObject(f"no file at {url}") from error
                if code in ("403", "AccessDenied", "Forbidden"):
                    # Without s3:ListBucket (least privilege) S3 answers a missing key with 403.
                    raise MissingObject(
                        f"no file at {url} (S3 answered 403: missing, or not readable by this function)"
                    ) from error
                raise
        return ObjectInfo(self._bucket, key, head["ETag"].strip('"'), int(head["ContentLength"]))

    def download(self, info: ObjectInfo, destination: Path) -> None:
        """Stream exactly the version `info` names to local disk, a MiB at a time."""
        with translate_errors(f"download {info.url}"):
            try:
                # IfMatch pins the version: a replaced object answers 412 instead of new bytes.
                response = self._s3.get_object(Bucket=self._bucket, Key=info.key, IfMatch=f'"{info.etag}"')
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in ("412", "PreconditionFailed"):
                    raise StaleObject(
                        f"{info.url} was replaced while being read (ETag {info.etag} is gone); "
                        "the new object's own event syncs it"
                    ) from error
                raise
            with destination.open("wb") as sink:
                for chunk in response["Body"].iter_chunks(DOWNLOAD_CHUNK_BYTES):
                    sink.write(chunk)
        if destination.stat().st_size != info.size_bytes:
            raise StaleObject(f"{info.url}: downloaded {destination.stat().st_size} bytes, expected {info.size_bytes}")
