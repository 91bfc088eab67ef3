"""The API while S3 fails, hangs or drags: 503 with Retry-After, bounded waits, recovery
without a restart, and a warm instance that keeps answering with the model it has."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from model_store.artifact import Artifact
from model_store.registry import Registry
from predict_api.service import ModelService
from tests.support.faults import FaultyS3

MakeApi = Callable[..., tuple[TestClient, ModelService]]
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@pytest.fixture
def s3_proxy(moto_endpoint: str) -> Iterator[FaultyS3]:
    with FaultyS3(moto_endpoint) as proxy:
        yield proxy


@pytest.fixture
def through_proxy(
    make_api: MakeApi, iris_bucket: str, s3_proxy: FaultyS3, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[TestClient, ModelService]]:
    """make_api, with the function's S3 endpoint pointed at the proxy."""

    def make(**settings: object) -> tuple[TestClient, ModelService]:
        made = make_api(iris_bucket, **settings)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_proxy.url)  # read at first use
        return made

    return make


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
@pytest.mark.parametrize("mode", ["hang", "error"])
def test_a_cold_predict_against_a_failing_s3_is_a_503_then_recovers_alone(
    through_proxy: Callable[..., tuple[TestClient, ModelService]], s3_proxy: FaultyS3, mode: str
) -> None:
    client, service = through_proxy(model_load_timeout_seconds=1.0)
    s3_proxy.mode = mode  # type: ignore[assignment]

    started = time.monotonic()
    response = client.post("/predict", json=SETOSA)
    seconds = time.monotonic() - started

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"]["code"] == "model_unavailable"
    assert seconds < 3.0  # the load's budget, not S3's 30 s read timeout times three
    assert client.get("/health").status_code == 200
    s3_proxy.mode = "pass"
    assert client.post("/predict", json=SETOSA).status_code == 200
    assert service.loader.current is not None


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
def test_a_warm_instance_answers_from_its_model_while_s3_hangs(
    through_proxy: Callable[..., tuple[TestClient, ModelService]],
    s3_proxy: FaultyS3,
    bucket_registry: Registry,
    iris_artifact_2: Artifact,
) -> None:
    client, _ = through_proxy(model_refresh_seconds=0)
    assert client.post("/predict", json=SETOSA).headers["x-model-version"] == "1"
    bucket_registry.publish(iris_artifact_2, name="iris", version="2")
    bucket_registry.promote("iris", "2")
    s3_proxy.mode = "hang"

    started = time.monotonic()
    response = client.post("/predict", json=SETOSA)

    assert response.status_code == 200
    assert response.headers["x-model-version"] == "1"
    assert time.monotonic() - started < 2.0  # the refresh's one-second budget
    s3_proxy.mode = "pass"
    assert client.post("/predict", json=SETOSA).headers["x-model-version"] == "2"
