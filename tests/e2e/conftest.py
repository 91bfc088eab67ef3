"""One local stack (`make local`, in-process) for the whole e2e session, on free ports.

The functions run from the built artifacts under the RIE; the model registry starts with
the session's tiny iris model as version 1, promoted. The refresh interval is 1 s so a
promotion shows within the test.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from devstack.stack import LocalStack, StackConfig
from model_store import Artifact
from model_store.registry import Registry, S3Store

REFRESH_SECONDS = 1


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


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, iris_artifact: Artifact
) -> Iterator[LocalStack]:
    refresh = {"MODEL_REFRESH_SECONDS": str(REFRESH_SECONDS)}
    config = StackConfig(
        api_port=0,
        s3_port=0,
        state_dir=tmp_path_factory.mktemp("local-state"),
        env_overrides={"PredictApiFunction": refresh, "BatchScoringFunction": refresh},
        max_environments=2,
        retry_delay=0.2,
        seed_model=False,
    )
    log_path = config.state / "stack.log"
    log = log_path.open("a", buffering=1)
    print(f"local stack log: {log_path}")

    def write(source: str, line: str) -> None:
        log.write(f"{source:<22}| {line}\n")

    local = LocalStack(config, log=write)
    local.start()
    try:
        registry(local).publish(iris_artifact, name="iris", version="1")
        registry(local).promote("iris", "1")
        yield local
    finally:
        local.stop()
        log.close()


def registry(stack: LocalStack) -> Registry:
    environment = stack.pools["PredictApiFunction"].spec.environment
    return Registry(
        S3Store(stack.client("s3"), environment["MODEL_BUCKET"], environment["MODEL_PREFIX"])
    )


def data_bucket(stack: LocalStack) -> str:
    return stack.buckets["DataBucket"]


def model_record() -> dict[str, float]:
    events = Path(__file__).resolve().parents[2] / "events"
    record: dict[str, float] = json.loads(json.loads((events / "predict.json").read_text())["body"])
    return record
