"""Fixtures for the online prediction function: a model in a moto S3 bucket, the app, the handler.

Every test gets its own uuid-named bucket on the session's moto server (over real HTTP), its
own /tmp model cache, and settings read from the environment the way Lambda provides them.
"""

from __future__ import annotations

import http.client
import importlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from model_store.artifact import Artifact
from model_store.registry import Registry, open_registry
from predict_api.app import create_app
from predict_api.observability import flush_metrics, metrics
from predict_api.service import ModelService
from predict_api.settings import ApiSettings
from tests.support.s3 import REGISTRY_PREFIX

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MODEL_NAME = "iris"

# (client, service): what a test needs to call the app and to look inside it.
ApiFactory = Callable[..., tuple[TestClient, ModelService]]


@pytest.fixture(autouse=True)
def _fresh_metrics() -> Iterator[None]:
    """Metrics are a process-wide set: no test sees another's unflushed predictions."""
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


@pytest.fixture
def bucket_name() -> str:
    """A unique bucket name, not created: on its own it is the 'bucket missing' case."""
    return f"predict-api-{uuid.uuid4().hex}"


@pytest.fixture
def empty_bucket(s3: S3Client, bucket_name: str) -> str:
    s3.create_bucket(Bucket=bucket_name)
    return bucket_name


@pytest.fixture
def bucket_registry(s3: S3Client, empty_bucket: str) -> Registry:
    return open_registry(f"s3://{empty_bucket}/{REGISTRY_PREFIX}", s3_client=s3)


@pytest.fixture
def iris_bucket(bucket_registry: Registry, empty_bucket: str, iris_artifact: Artifact) -> str:
    """iris version "1" (logistic regression) published and promoted to production."""
    bucket_registry.publish(iris_artifact, name=MODEL_NAME, version="1")
    bucket_registry.promote(MODEL_NAME, "1", alias="production")
    return empty_bucket


@pytest.fixture
def s3_requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every HTTP request this process sends from now on, as "METHOD host:port/path".

    Observation only, at http.client's level, which both ways of reaching S3 go through
    (the functions' own SigV4 client and botocore's urllib3): the request still goes out.
    """
    sent: list[str] = []
    real_putrequest = http.client.HTTPConnection.putrequest

    def record(
        self: http.client.HTTPConnection, method: str, url: str, *args: Any, **kwargs: Any
    ) -> None:
        sent.append(f"{method} {self.host}:{self.port}{url}")
        real_putrequest(self, method, url, *args, **kwargs)

    monkeypatch.setattr(http.client.HTTPConnection, "putrequest", record)
    return sent


@pytest.fixture
def set_api_env(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> Callable[[str], None]:
    """Point the function's environment at BUCKET on the moto server."""

    def set_env(bucket: str) -> None:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
        monkeypatch.setenv("MODEL_BUCKET", bucket)
        monkeypatch.setenv("MODEL_PREFIX", REGISTRY_PREFIX)
        monkeypatch.setenv("MODEL_NAME", MODEL_NAME)
        monkeypatch.setenv("MODEL_ALIAS", "production")
        for name in (
            "MODEL_VERSION",
            "MODEL_REFRESH_SECONDS",
            "MAX_BATCH_RECORDS",
            "SERVING_RUNTIME",
        ):
            monkeypatch.delenv(name, raising=False)

    return set_env


@pytest.fixture
def api_env(set_api_env: Callable[[str], None], iris_bucket: str) -> str:
    """The environment of a function serving the model bucket; returns the bucket."""
    set_api_env(iris_bucket)
    return iris_bucket


def _service(settings: ApiSettings, cache_dir: Path) -> ModelService:
    """The real service wiring, with a model cache of the test's own instead of /tmp's."""
    service = ModelService.from_settings(settings)
    service.loader.cache_dir = cache_dir
    return service


def _test_client(settings: ApiSettings, service: ModelService) -> TestClient:
    """A TestClient of the real app that, like the Lambda handler, flushes metrics per request.

    Metrics are one process-wide set that the handler flushes after every invocation; without
    that, dimensions of one request (model_version) would leak into the next.
    """
    test_client = TestClient(create_app(settings, service))

    def flush(_: Any) -> None:
        flush_metrics()

    test_client.event_hooks = {"request": [], "response": [flush]}
    return test_client


@pytest.fixture
def settings(api_env: str) -> ApiSettings:
    return ApiSettings()


@pytest.fixture
def service(settings: ApiSettings, tmp_path: Path) -> ModelService:
    return _service(settings, tmp_path / "model-cache")


@pytest.fixture
def client(settings: ApiSettings, service: ModelService) -> Iterator[TestClient]:
    with _test_client(settings, service) as test_client:
        yield test_client


@pytest.fixture
def make_api(set_api_env: Callable[[str], None], tmp_path: Path) -> Iterator[ApiFactory]:
    """``make_api(bucket, **settings)``: an app over BUCKET with settings overridden."""
    clients: list[TestClient] = []

    def make(bucket: str, **overrides: Any) -> tuple[TestClient, ModelService]:
        set_api_env(bucket)
        settings = ApiSettings(**overrides)
        service = _service(settings, tmp_path / f"model-cache-{len(clients)}")
        test_client = _test_client(settings, service)
        test_client.__enter__()
        clients.append(test_client)
        return test_client, service

    yield make
    for test_client in clients:
        test_client.__exit__(None, None, None)


@pytest.fixture
def handler_module(api_env: str, tmp_path: Path) -> ModuleType:
    """``predict_api.handler`` imported afresh under the test's environment.

    Its module-level app (and settings) are built at import, so reloading makes them serve
    the test's bucket; only the /tmp model cache is redirected to the test's own.
    """
    import predict_api.handler

    module = importlib.reload(predict_api.handler)
    module.app.state.service.loader.cache_dir = tmp_path / "handler-model-cache"
    return module


@dataclass
class FakeLambdaContext:
    """The attributes of the Lambda context object a Python handler receives."""

    function_name: str = "PredictApiFunction"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:PredictApiFunction"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = "5b3f2e6c-0d4a-4c1e-9f7a-lambda0000001"
    log_group_name: str = "/aws/lambda/PredictApiFunction"
    log_stream_name: str = "2026/11/23/[$LATEST]0123456789abcdef0123456789abcdef"
    remaining_millis: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_millis


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext(aws_request_id=str(uuid.uuid4()))
