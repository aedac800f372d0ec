"""Answering a CloudFormation custom resource request (the pre-signed ResponseURL)."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from typing import Any, Literal

# CloudFormation rejects response bodies over 4 KiB; the reason is cut to fit.
MAX_REASON_CHARS = 1500
PHYSICAL_RESOURCE_ID = "upsell-signals-schema"


@dataclass(frozen=True)
class CustomResourceRequest:
    """The fields of a CloudFormation custom resource event this function uses."""

    request_type: Literal["Create", "Update", "Delete"]
    response_url: str
    stack_id: str
    request_id: str
    logical_resource_id: str
    physical_resource_id: str | None

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> CustomResourceRequest:
        request_type = event["RequestType"]
        if request_type not in ("Create", "Update", "Delete"):
            raise ValueError(f"unknown RequestType {request_type!r}")
        return cls(
            request_type=request_type,
            response_url=event["ResponseURL"],
            stack_id=event["StackId"],
            request_id=event["RequestId"],
            logical_resource_id=event["LogicalResourceId"],
            physical_resource_id=event.get("PhysicalResourceId"),
        )


def is_custom_resource_event(event: Any) -> bool:
    return isinstance(event, dict) and "RequestType" in event and "ResponseURL" in event


def send_response(
    request: CustomResourceRequest,
    *,
    succeeded: bool,
    reason: str,
    data: dict[str, Any] | None = None,
    timeout_seconds: int = 30,
) -> None:
    """PUT the SUCCESS/FAILED answer to CloudFormation's pre-signed URL."""
    body = json.dumps(
        {
            "Status": "SUCCESS" if succeeded else "FAILED",
            "Reason": reason[:MAX_REASON_CHARS],
            "PhysicalResourceId": request.physical_resource_id or PHYSICAL_RESOURCE_ID,
            "StackId": request.stack_id,
            "RequestId": request.request_id,
            "LogicalResourceId": request.logical_resource_id,
            "NoEcho": False,
            "Data": data or {},
        }
    ).encode()
    # The pre-signed URL is signed for an empty content-type.
    http_request = urllib.request.Request(  # noqa: S310 (scheme checked below)
        request.response_url, data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
    )
    if not request.response_url.startswith(("https://", "http://")):
        raise ValueError(f"ResponseURL is not an http(s) URL: {request.response_url[:80]!r}")
    with urllib.request.urlopen(http_request, timeout=timeout_seconds) as response:  # noqa: S310 (scheme checked above)
        response.read()
