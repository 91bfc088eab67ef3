"""Input a fuzzer or an attacker sends: every case gets a prediction or a 4xx in the
envelope, never a 500, and an error costs bounded work and a small body."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

import predict_api.routes
from model_store.artifact import Artifact
from model_store.registry import Registry
from predict_api.service import ModelService

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MakeApi = Callable[..., tuple[TestClient, ModelService]]
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
# Finite, valid JSON numbers whose scaled values overflow the models' arithmetic (found by
# schemathesis through the local gateway: a 500 before).
HUGE = {
    "sepal_length": -3.9e112,
    "sepal_width": 1.7976931348623157e308,
    "petal_length": 1.4,
    "petal_width": 0.2,
}
# Fits float64 but not the float32 stage of a tree's graph (or scikit-learn's own check).
FLOAT32_OVERFLOW = {**SETOSA, "petal_length": 1e39}


def _error(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "request_id"}
    assert body["error"]["code"] in {"invalid_input", "payload_too_large"}
    error: dict[str, Any] = body["error"]
    return error


@pytest.fixture(params=["onnx", "sklearn"])
def runtime(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def tree_bucket(bucket_registry: Registry, empty_bucket: str, iris_artifact_2: Artifact) -> str:
    """iris version "1" is a decision tree: its ONNX graph scores in float32."""
    bucket_registry.publish(iris_artifact_2, name="iris", version="1")
    bucket_registry.promote("iris", "1")
    return empty_bucket


def test_finite_numbers_the_model_cannot_score_are_a_422_naming_the_fields(
    make_api: MakeApi, iris_bucket: str, runtime: str
) -> None:
    client, _ = make_api(iris_bucket, serving_runtime=runtime)

    error = _error(client.post("/predict", json=HUGE), 422)

    assert error["message"].startswith("the model cannot score these values: ")
    assert "sepal_width=1.79769e+308 is outside the training range 2 to 4.4" in error["message"]
    assert "sepal_length=-3.9e+112" in error["message"]
    assert error["details"] == [{"loc": ["body"], "msg": error["message"], "type": "unscorable"}]
    assert client.post("/predict", json=SETOSA).status_code == 200


def test_in_a_batch_the_422_names_each_record_it_cannot_score(
    make_api: MakeApi, iris_bucket: str, runtime: str
) -> None:
    client, _ = make_api(iris_bucket, serving_runtime=runtime)

    error = _error(client.post("/batch_predict", json={"records": [SETOSA, HUGE, SETOSA]}), 422)

    assert error["message"] == "the model cannot score 1 of the records"
    [detail] = error["details"]
    assert detail["loc"] == ["body", "records", 1]
    assert detail["type"] == "unscorable"
    assert "sepal_width=1.79769e+308" in detail["msg"]


def test_a_value_float32_cannot_hold_is_a_422_for_a_tree_in_either_runtime(
    make_api: MakeApi, tree_bucket: str, runtime: str
) -> None:
    client, _ = make_api(tree_bucket, serving_runtime=runtime)

    error = _error(client.post("/predict", json=FLOAT32_OVERFLOW), 422)

    assert "petal_length=1e+39 is outside the training range" in error["message"]
    assert client.post("/predict", json=SETOSA).json()["prediction"] == "setosa"


# -- bounded errors and bodies -------------------------------------------------------------


def test_a_thousand_empty_records_give_twenty_details_and_a_count(
    client: TestClient,
) -> None:
    body = json.dumps({"records": [{}] * 1000})  # 4 KB: 4,000 missing fields

    response = client.post(
        "/batch_predict", content=body, headers={"content-type": "application/json"}
    )

    error = _error(response, 422)
    assert len(error["details"]) == 20
    assert error["details_omitted"] == 4000 - 20
    assert len(response.content) < 4096  # it was 342 KB


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
def test_a_body_past_twice_the_largest_legal_batch_is_refused_before_parsing(
    make_api: MakeApi, iris_bucket: str
) -> None:
    client, service = make_api(iris_bucket)
    client.post("/predict", json=SETOSA)  # the model (and its limits) is known
    manifest = service.manifest()
    limit = service.body_limit(manifest, batch=True)
    assert limit < 1_000_000  # iris: four short features, 1,000 records
    # A legal batch of the longest numbers JSON allows fits.
    widest = dict.fromkeys(SETOSA, -1.2345678901234568e-300)
    legal = json.dumps({"records": [widest] * 1000})
    assert len(legal) < limit
    assert (
        client.post(
            "/batch_predict", content=legal, headers={"content-type": "application/json"}
        ).status_code
        == 200
    )
    # Records full of unknown keys: each was a detail of the 422 (61 MB of them for 30
    # records of 20,000 keys), now refused unread, at Lambda's 6 MB or at the model's limit.
    for keys, refused_at in [(20_000, 6 * 1024 * 1024), (2_000, limit)]:
        hostile = json.dumps(
            {"records": [{**SETOSA, **{f"k{i}": 0 for i in range(keys)}} for _ in range(30)]}
        )
        response = client.post(
            "/batch_predict", content=hostile, headers={"content-type": "application/json"}
        )
        error = _error(response, 413)
        assert (
            error["message"] == f"request body is {len(hostile)} bytes; the limit is {refused_at}"
        )
        assert len(response.content) < 1024
    assert service.body_limit(manifest, batch=False) < limit


def test_an_answer_larger_than_a_lambda_response_is_a_413_saying_how_many_fit(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(predict_api.routes, "RESPONSE_LIMIT", 2_000)

    error = _error(client.post("/batch_predict", json={"records": [SETOSA] * 40}), 413)

    assert "more than a Lambda response carries; send at most" in error["message"]
    fits = int(error["message"].rsplit("at most ", 1)[1].split()[0])
    assert client.post("/batch_predict", json={"records": [SETOSA] * fits}).status_code == 200


def test_the_body_limit_can_be_set(make_api: MakeApi, iris_bucket: str, s3: S3Client) -> None:
    client, service = make_api(iris_bucket, max_body_bytes=2048)
    assert service.body_limit(None, batch=True) == 2048
    _error(client.post("/batch_predict", json={"records": [SETOSA] * 40}), 413)
