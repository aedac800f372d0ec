"""A moto S3 server on loopback, run in the parent; workers reach it by AWS_ENDPOINT_URL_S3."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from types import TracebackType
from typing import Any

REGION = "us-east-1"
BUCKET = "bench-signals"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MotoS3:
    """ThreadedMotoServer on 127.0.0.1 and a free port, with one bucket."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._client: Any = None

    @property
    def environment(self) -> dict[str, str]:
        """What a worker needs to reach this server with boto3 (dummy credentials)."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }

    def __enter__(self) -> MotoS3:
        import boto3

        self._server.start()
        self._client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self._client.create_bucket(Bucket=BUCKET)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self._server.stop()

    def upload(self, path: Path, key: str) -> None:
        self._client.upload_file(str(path), BUCKET, key)

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=BUCKET, Key=key)
