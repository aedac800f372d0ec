"""The daily object in S3: what it is (ETag, size) and a local copy to read."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from functions.ingest.work_space import FreeBytes, ensure_room, free_bytes, no_space_is_permanent
from functions.shared.errors import MissingObject, StaleObject, TransientError, translate_errors

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
    """Reads signal files from one bucket through a boto3 S3 client.

    `reserve_bytes`: room the caller will write beside a download (the load files), checked
    for with the object's own size before the download starts.
    """

    def __init__(self, s3_client: Any, bucket: str, *, reserve_bytes: int = 0, free: FreeBytes = free_bytes) -> None:
        self._s3 = s3_client
        self._bucket = bucket
        self._reserve_bytes = reserve_bytes
        self._free = free

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
        """Stream exactly the version `info` names to `destination`, a MiB at a time.

        The bytes go to a temporary name beside it and are renamed into place once their
        size and checksum are verified: `destination` exists only complete. A transfer cut
        short or garbled is TransientError (the retry downloads again); no room is NoSpace.
        """
        work_dir = destination.parent
        ensure_room(work_dir, info.size_bytes + self._reserve_bytes, f"{info.url} and its load files", free=self._free)
        with tempfile.NamedTemporaryFile(dir=work_dir, prefix=f"{destination.name}.", suffix=".part", delete=False) as sink:
            partial = Path(sink.name)
        try:
            with no_space_is_permanent(work_dir, f"the download of {info.url}"):
                digest = self._fetch_into(info, partial)
            _verify(info, partial.stat().st_size, digest)
            partial.replace(destination)
        finally:
            partial.unlink(missing_ok=True)

    def _fetch_into(self, info: ObjectInfo, partial: Path) -> _Digest:
        """GET the object into `partial`; what the bytes received hash to, if that can be checked."""
        with translate_errors(f"download {info.url}"):
            try:
                # IfMatch pins the version: a replaced object answers 412 instead of new bytes.
                # ChecksumMode asks for S3's own full-object checksum (CRC or SHA), which
                # botocore checks at the end of the body (FlexibleChecksumError on a mismatch).
                response = self._s3.get_object(
                    Bucket=self._bucket, Key=info.key, IfMatch=f'"{info.etag}"', ChecksumMode="ENABLED"
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in ("412", "PreconditionFailed"):
                    raise StaleObject(
                        f"{info.url} was replaced while being read (ETag {info.etag} is gone)"
                    ) from error
                raise
            md5 = hashlib.md5(usedforsecurity=False) if _etag_is_md5(info.etag, response) else None
            with partial.open("wb") as sink:
                for chunk in response["Body"].iter_chunks(DOWNLOAD_CHUNK_BYTES):
                    if md5 is not None:
                        md5.update(chunk)
                    sink.write(chunk)
        return md5.hexdigest() if md5 is not None else None


_Digest = str | None
# With SSE-KMS (and DSSE-KMS) or SSE-C the ETag is not the MD5 of the bytes, even in one part.
_ETAG_NOT_MD5_ENCRYPTIONS = frozenset({"aws:kms", "aws:kms:dsse"})


def _etag_is_md5(etag: str, response: dict[str, Any]) -> bool:
    """A single-part upload stored with SSE-S3 or none: its ETag is the MD5 of its bytes.

    A multipart ETag ("<md5 of md5s>-<parts>") cannot be recomputed without the part
    sizes; such objects rely on the size check and on S3's checksum, when it has one.
    """
    encrypted_with = response.get("ServerSideEncryption")
    return "-" not in etag and encrypted_with not in _ETAG_NOT_MD5_ENCRYPTIONS and not response.get("SSECustomerAlgorithm")


def _verify(info: ObjectInfo, received_bytes: int, md5: _Digest) -> None:
    """TransientError unless the bytes received are the object's: same length, same MD5 where known."""
    if received_bytes != info.size_bytes:
        raise TransientError(f"download of {info.url} broke off: {received_bytes} bytes of {info.size_bytes} received")
    if md5 is not None and md5 != info.etag.lower():
        raise TransientError(f"download of {info.url} is garbled: its MD5 is {md5}, the ETag says {info.etag}")
