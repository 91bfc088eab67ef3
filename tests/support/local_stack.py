"""Talking to a running local stack (`make local`, in-process): real HTTP, its registry and
buckets."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from devstack.stack import LocalStack
from model_store.registry import Registry, S3Store
from tests.support.events import load_event

# The model refresh interval the e2e stack runs with: a promotion shows within a test.
REFRESH_SECONDS = 1
# What the e2e stack shards: a .csv over this many bytes, scored in chunks of CHUNK_ROWS.
SHARD_ABOVE_BYTES = 4096
CHUNK_ROWS = 10


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    url: str,
    method: str = "GET",
    *,
    body: bytes | str | dict[str, Any] | list[Any] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
) -> Response:
    """One real HTTP request (http.client: no client-side magic between us and the gateway)."""
    parts = urlsplit(url)
    payload = json.dumps(body).encode() if isinstance(body, dict | list) else body
    if isinstance(payload, str):
        payload = payload.encode()
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        connection.request(
            method, parts.path + (f"?{parts.query}" if parts.query else ""), payload, all_headers
        )
        answer = connection.getresponse()
        return Response(
            answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        )
    finally:
        connection.close()


def registry_of(stack: LocalStack) -> Registry:
    environment = stack.pools["PredictApiFunction"].spec.environment
    return Registry(
        S3Store(stack.client("s3"), environment["MODEL_BUCKET"], environment["MODEL_PREFIX"])
    )


def data_bucket_of(stack: LocalStack) -> str:
    return stack.buckets["DataBucket"]


def model_record() -> dict[str, float]:
    """The record events/predict.json posts."""
    record: dict[str, float] = json.loads(load_event("predict.json")["body"])
    return record
