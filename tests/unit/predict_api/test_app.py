"""The FastAPI app through TestClient, with the model in a moto S3 bucket over HTTP."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from model_store import LoadedModel, open_registry
from model_store.artifact import Artifact
from model_store.registry import Registry
from predict_api.errors import MAX_DETAILS
from predict_api.models import ErrorResponse
from predict_api.service import ModelService
from tests.support.events import load_event

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MakeApi = Callable[..., tuple[TestClient, ModelService]]

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CLASSES = ["setosa", "versicolor", "virginica"]
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
UNAVAILABLE_MESSAGE = "the model cannot be loaded right now; retry later"
MODEL_KEY = "registry/models/iris/1/model.joblib"
SERVED_KEYS = {"sklearn": MODEL_KEY, "onnx": "registry/models/iris/1/model.onnx"}


def _envelope(response: Response, status: int, code: str) -> dict[str, Any]:
    """Assert RESPONSE is the error envelope with STATUS and CODE; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "request_id"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], list)
    assert body["request_id"]
    assert response.headers["x-request-id"] == body["request_id"]
    return body


def _details(body: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """(loc, type) of each detail, after checking every detail has loc, msg and type."""
    found = []
    for detail in body["error"]["details"]:
        assert set(detail) == {"loc", "msg", "type"}, detail
        assert isinstance(detail["msg"], str)
        assert detail["msg"]
        found.append((tuple(detail["loc"]), detail["type"]))
    return found


def _batch_records() -> list[dict[str, float]]:
    """The three records of events/batch_predict.json: setosa, versicolor, virginica rows."""
    records: list[dict[str, float]] = json.loads(load_event("batch_predict.json")["body"])[
        "records"
    ]
    return records


# -- health and model metadata ------------------------------------------------------------


def test_health_answers_without_touching_s3(
    make_api: MakeApi, bucket_name: str, s3_requests: list[str]
) -> None:
    # bucket_name is never created: anything that reached for the model would fail.
    client, service = make_api(bucket_name)

    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-request-id"]
    assert service.loader.current is None
    assert s3_requests == []
    # The control: the same app does fail, over S3, as soon as the model is wanted.
    assert client.post("/predict", json=SETOSA).status_code == 503
    assert s3_requests


def test_model_metadata_before_and_after_the_first_prediction(
    client: TestClient, service: ModelService, iris_artifact: Artifact
) -> None:
    manifest = iris_artifact.manifest

    before = client.get("/model")

    assert before.status_code == 200, before.text
    info = before.json()
    assert info["loaded"] is False
    assert service.loader.current is None  # metadata comes from the manifest, not unpickling
    assert (info["name"], info["version"], info["alias"]) == ("iris", "1", "production")
    assert [f["name"] for f in info["features"]] == FEATURES
    assert all(f["dtype"] == "float64" for f in info["features"])
    assert info["classes"] == CLASSES
    assert info["algorithm"] == manifest.algorithm
    assert info["metrics"] == manifest.metrics.model_dump(mode="json")
    assert info["sha256"] == manifest.sha256
    assert before.headers["x-model-version"] == "1"

    assert client.post("/predict", json=SETOSA).status_code == 200
    after = client.get("/model")

    assert after.status_code == 200
    assert after.json()["loaded"] is True
    assert service.loader.current is not None
    assert {k: v for k, v in after.json().items() if k != "loaded"} == {
        k: v for k, v in info.items() if k != "loaded"
    }


# -- predictions ---------------------------------------------------------------------------


def test_predict_one_setosa_row(client: TestClient) -> None:
    response = client.post("/predict", json=SETOSA)

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"prediction", "probabilities", "model", "request_id"}
    assert body["prediction"] == "setosa"
    probabilities = body["probabilities"]
    assert list(probabilities) == CLASSES
    assert math.isclose(sum(probabilities.values()), 1.0, abs_tol=1e-9)
    assert max(probabilities, key=probabilities.get) == "setosa"
    assert body["model"] == {"name": "iris", "version": "1"}
    assert response.headers["x-model-version"] == "1"
    assert body["request_id"]
    assert response.headers["x-request-id"] == body["request_id"]
    # Each request gets an id of its own.
    assert client.post("/predict", json=SETOSA).json()["request_id"] != body["request_id"]


def test_predict_accepts_integers_for_float_features(client: TestClient) -> None:
    # JSON does not tell 5 from 5.0: whole numbers are valid feature values.
    record = {"sepal_length": 5, "sepal_width": 3, "petal_length": 1, "petal_width": 0}

    response = client.post("/predict", json=record)

    assert response.status_code == 200, response.text
    assert response.json()["prediction"] == "setosa"


def test_batch_predict_keeps_the_input_order(client: TestClient) -> None:
    records = _batch_records()
    body = load_event("batch_predict.json")["body"]

    response = client.post(
        "/batch_predict", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["count"] == 3
    assert [p["prediction"] for p in result["predictions"]] == CLASSES
    for item in result["predictions"]:
        assert list(item["probabilities"]) == CLASSES
        assert math.isclose(sum(item["probabilities"].values()), 1.0, abs_tol=1e-9)
    assert result["model"] == {"name": "iris", "version": "1"}
    assert response.headers["x-model-version"] == "1"
    assert response.headers["x-request-id"] == result["request_id"]

    reversed_response = client.post("/batch_predict", json={"records": records[::-1]})

    assert [p["prediction"] for p in reversed_response.json()["predictions"]] == CLASSES[::-1]


def test_batch_predict_scores_up_to_the_limit_and_refuses_more(
    make_api: MakeApi, iris_bucket: str
) -> None:
    client, _ = make_api(iris_bucket, max_batch_records=3)
    records = _batch_records()

    at_limit = client.post("/batch_predict", json={"records": records})
    over = client.post("/batch_predict", json={"records": [*records, SETOSA]})

    assert at_limit.status_code == 200, at_limit.text
    assert at_limit.json()["count"] == 3
    body = _envelope(over, 413, "payload_too_large")
    assert _details(body) == [(("body", "records"), "too_long")]


@pytest.mark.parametrize("path", ["/predict", "/batch_predict"])
def test_a_body_over_the_byte_limit_is_413(make_api: MakeApi, iris_bucket: str, path: str) -> None:
    client, _ = make_api(iris_bucket, max_body_bytes=1024)
    payload: dict[str, Any] = SETOSA if path == "/predict" else {"records": [SETOSA]}
    small = json.dumps(payload)
    # Valid JSON either way: only the size differs.
    big = small + " " * (1025 - len(small))

    assert client.post(path, content=small).status_code == 200
    response = client.post(path, content=big)

    body = _envelope(response, 413, "payload_too_large")
    assert "1024" in body["error"]["message"]


# -- invalid input -------------------------------------------------------------------------


def _record_with(**changes: Any) -> dict[str, Any]:
    return {**SETOSA, **changes}


def _raw(text: str) -> bytes:
    return text.encode()


INVALID_PREDICT_BODIES: list[Any] = [
    pytest.param(
        json.dumps({k: v for k, v in SETOSA.items() if k != "petal_width"}).encode(),
        [(("body", "petal_width"), "missing")],
        id="missing-field",
    ),
    pytest.param(
        json.dumps(_record_with(sepal_length="long")).encode(),
        [(("body", "sepal_length"), "float_type")],
        id="string-value",
    ),
    pytest.param(
        json.dumps(_record_with(sepal_length="5.1")).encode(),
        [(("body", "sepal_length"), "float_type")],
        id="numeric-string",
    ),
    pytest.param(
        _raw('{"sepal_length": NaN, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}'),
        [(("body", "sepal_length"), "finite_number")],
        id="nan",
    ),
    pytest.param(
        _raw(
            '{"sepal_length": 5.1, "sepal_width": Infinity, "petal_length": 1.4,'
            ' "petal_width": 0.2}'
        ),
        [(("body", "sepal_width"), "finite_number")],
        id="infinity",
    ),
    pytest.param(
        _raw(
            '{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": -Infinity,'
            ' "petal_width": 0.2}'
        ),
        [(("body", "petal_length"), "finite_number")],
        id="minus-infinity",
    ),
    pytest.param(
        _raw(
            '{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 1e999}'
        ),
        [(("body", "petal_width"), "finite_number")],
        id="overflow-to-infinity",
    ),
    pytest.param(
        json.dumps(_record_with(colour="blue")).encode(),
        [(("body", "colour"), "extra_forbidden")],
        id="unknown-field",
    ),
    pytest.param(
        json.dumps(_record_with(petal_width=True)).encode(),
        [(("body", "petal_width"), "float_type")],
        id="bool",
    ),
    pytest.param(
        json.dumps(_record_with(petal_width=None)).encode(),
        [(("body", "petal_width"), "float_type")],
        id="null",
    ),
    pytest.param(b"", [(("body",), "missing")], id="empty-body"),
    pytest.param(b"  \n ", [(("body",), "missing")], id="blank-body"),
    pytest.param(b'{"sepal_length": 5.1,', [(("body",), "json_invalid")], id="invalid-json"),
    pytest.param(b"\xff\xfe{}", [(("body",), "json_invalid")], id="not-utf8"),
    pytest.param(json.dumps([SETOSA]).encode(), [(("body",), "model_type")], id="array-not-object"),
    pytest.param(b"42", [(("body",), "model_type")], id="number-not-object"),
]


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
@pytest.mark.parametrize(("content", "expected"), INVALID_PREDICT_BODIES)
def test_invalid_predict_bodies_are_422_with_per_field_details(
    client: TestClient, content: bytes, expected: list[tuple[tuple[Any, ...], str]]
) -> None:
    response = client.post(
        "/predict", content=content, headers={"content-type": "application/json"}
    )

    body = _envelope(response, 422, "invalid_input")
    assert _details(body) == expected


def test_several_problems_in_one_record_are_all_reported(client: TestClient) -> None:
    content = json.dumps({"sepal_length": "long", "sepal_width": 3.5, "colour": "blue"})

    response = client.post("/predict", content=content)

    body = _envelope(response, 422, "invalid_input")
    assert sorted(_details(body)) == sorted(
        [
            (("body", "sepal_length"), "float_type"),
            (("body", "petal_length"), "missing"),
            (("body", "petal_width"), "missing"),
            (("body", "colour"), "extra_forbidden"),
        ]
    )


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param({"records": []}, [(("body", "records"), "too_short")], id="empty-records"),
        pytest.param({}, [(("body", "records"), "missing")], id="no-records"),
        pytest.param({"records": SETOSA}, [(("body", "records"), "list_type")], id="not-a-list"),
        pytest.param(
            {"records": [SETOSA, {k: v for k, v in SETOSA.items() if k != "sepal_width"}]},
            [(("body", "records", 1, "sepal_width"), "missing")],
            id="bad-second-record",
        ),
        pytest.param(
            {"records": [SETOSA], "extra": 1},
            [(("body", "extra"), "extra_forbidden")],
            id="unknown-top-level-field",
        ),
        pytest.param([SETOSA], [(("body",), "model_type")], id="array-not-object"),
    ],
)
def test_invalid_batch_bodies_are_422(
    client: TestClient, payload: Any, expected: list[tuple[tuple[Any, ...], str]]
) -> None:
    response = client.post("/batch_predict", json=payload)

    body = _envelope(response, 422, "invalid_input")
    assert _details(body) == expected


def test_nan_inside_a_batch_is_422_at_its_record(client: TestClient) -> None:
    content = (
        '{"records": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, '
        '"petal_width": 0.2}, {"sepal_length": NaN, "sepal_width": 3.5, "petal_length": 1.4, '
        '"petal_width": 0.2}]}'
    )

    response = client.post("/batch_predict", content=content.encode())

    body = _envelope(response, 422, "invalid_input")
    assert _details(body) == [(("body", "records", 1, "sepal_length"), "finite_number")]


# -- routing errors ------------------------------------------------------------------------


def test_unknown_route_is_404_in_the_envelope(client: TestClient) -> None:
    response = client.get("/no/such/route")

    body = _envelope(response, 404, "not_found")
    assert body["error"]["message"] == "no such route"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("GET", "/predict", "POST"), ("GET", "/batch_predict", "POST"), ("POST", "/health", "GET")],
)
def test_wrong_method_is_405_in_the_envelope(
    client: TestClient, method: str, path: str, allowed: str
) -> None:
    response = client.request(method, path)

    body = _envelope(response, 405, "method_not_allowed")
    assert body["error"]["message"] == "method not allowed on this route"
    assert response.headers["allow"] == allowed


# -- OpenAPI -------------------------------------------------------------------------------


def test_openapi_describes_the_models_features_lazily(
    client: TestClient, service: ModelService, s3_requests: list[str], iris_artifact: Artifact
) -> None:
    assert s3_requests == []  # building the app read nothing

    response = client.get("/openapi.json")

    assert response.status_code == 200
    document = response.json()
    schemas = document["components"]["schemas"]
    record = schemas["IrisRecord"]
    assert list(record["properties"]) == FEATURES
    assert record["required"] == FEATURES
    assert record["additionalProperties"] is False
    examples = {f.name: f.example for f in iris_artifact.manifest.features}
    for name, prop in record["properties"].items():
        assert prop["type"] == "number"
        assert prop["examples"] == [examples[name]]
    predict_body = document["paths"]["/predict"]["post"]["requestBody"]["content"][
        "application/json"
    ]
    assert predict_body["schema"] == {"$ref": "#/components/schemas/IrisRecord"}
    assert predict_body["example"] == examples
    batch_body = document["paths"]["/batch_predict"]["post"]["requestBody"]["content"][
        "application/json"
    ]
    assert batch_body["schema"] == {"$ref": "#/components/schemas/IrisBatch"}
    assert batch_body["example"] == {"records": [examples]}
    # What each route answers is documented too.
    responses = {
        path: document["paths"][path][method]["responses"]["200"]["content"]["application/json"]
        for path, method in [("/predict", "post"), ("/batch_predict", "post"), ("/model", "get")]
    }
    assert responses["/predict"]["schema"] == {"$ref": "#/components/schemas/PredictResponse"}
    assert set(schemas["PredictResponse"]["properties"]) == {
        "prediction",
        "probabilities",
        "model",
        "request_id",
    }
    assert responses["/batch_predict"]["schema"]["$ref"].endswith("/BatchResponse")
    assert "features" in schemas["ModelInfo"]["properties"]
    # Obtained from the registry at request time, from the manifest alone.
    assert s3_requests
    assert all("/model." not in request for request in s3_requests)  # no model file
    assert service.loader.current is None


def test_openapi_answers_while_the_model_is_missing_then_describes_it(
    make_api: MakeApi, empty_bucket: str, bucket_registry: Registry, iris_artifact: Artifact
) -> None:
    client, _ = make_api(empty_bucket)

    missing = client.get("/openapi.json")

    assert missing.status_code == 200
    assert "IrisRecord" not in missing.json().get("components", {}).get("schemas", {})
    body = missing.json()["paths"]["/predict"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"type": "object"}

    bucket_registry.publish(iris_artifact, name="iris", version="1")
    bucket_registry.promote("iris", "1")
    present = client.get("/openapi.json")

    assert list(present.json()["components"]["schemas"]["IrisRecord"]["properties"]) == FEATURES


def test_openapi_declares_the_errors_each_route_answers(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    paths = document["paths"]

    declared = {
        (path, method): sorted(int(status) for status in operation["responses"])
        for path, operations in paths.items()
        for method, operation in operations.items()
    }
    scoring = [200, 403, 413, 422, 429, 503]
    assert declared == {
        ("/health", "get"): [200],
        ("/model", "get"): [200, 403, 429, 503],
        ("/predict", "post"): scoring,
        ("/batch_predict", "post"): scoring,
    }
    envelope = {"$ref": "#/components/schemas/ErrorResponse"}
    gateway = {"$ref": "#/components/schemas/GatewayError"}  # API Gateway's own {"message"}
    for path in ("/predict", "/batch_predict"):
        responses = paths[path]["post"]["responses"]
        bodies = {s: r["content"]["application/json"]["schema"] for s, r in responses.items()}
        assert bodies["422"] == bodies["503"] == envelope
        assert bodies["413"] == {"anyOf": [envelope, gateway]}  # the function's or the gateway's
        assert bodies["403"] == bodies["429"] == gateway
        assert responses["503"]["headers"]["Retry-After"]["required"] is True
        assert paths[path]["post"]["security"] == [{"ApiKey": []}]
    assert "security" not in paths["/health"]["get"]
    assert document["components"]["securitySchemes"] == {
        "ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}
    }
    # The declared envelope is the one the API sends.
    schemas = document["components"]["schemas"]
    assert schemas["ErrorResponse"]["required"] == ["error", "request_id"]
    assert schemas["ErrorBody"]["required"] == ["code", "message", "details"]
    assert schemas["ErrorBody"]["properties"]["details"]["maxItems"] == MAX_DETAILS
    sent = client.post("/predict", json={"sepal_length": "x"}).json()
    assert ErrorResponse.model_validate(sent).error.code == "invalid_input"


# -- model unavailable: 503, then recovery -------------------------------------------------


def _assert_unavailable(response: Response, retry_after: int, *secrets: str) -> None:
    body = _envelope(response, 503, "model_unavailable")
    assert response.headers["retry-after"] == str(retry_after)
    assert body["error"]["message"] == UNAVAILABLE_MESSAGE
    assert body["error"]["details"] == []
    for secret in ("Traceback", "s3://", "registry/", "model.", "sha256", *secrets):
        assert secret not in response.text


def _publish_and_promote(s3: S3Client, bucket: str, artifact: Artifact) -> None:
    registry = open_registry(f"s3://{bucket}/registry", s3_client=s3)
    registry.publish(artifact, name="iris", version="1")
    registry.promote("iris", "1")


def _tamper(s3: S3Client, bucket: str, key: str = MODEL_KEY) -> bytes:
    """Flip one byte of a stored model file (same size); return the original bytes."""
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0x01
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(tampered))
    return original


def test_503_when_the_bucket_is_missing_then_recovers(
    make_api: MakeApi, s3: S3Client, bucket_name: str, iris_artifact: Artifact
) -> None:
    client, service = make_api(bucket_name, retry_after_seconds=7)

    for path in ("/predict", "/batch_predict"):
        payload: dict[str, Any] = SETOSA if path == "/predict" else {"records": [SETOSA]}
        _assert_unavailable(client.post(path, json=payload), 7, bucket_name)
    _assert_unavailable(client.get("/model"), 7, bucket_name)
    assert service.loader.current is None

    s3.create_bucket(Bucket=bucket_name)
    _publish_and_promote(s3, bucket_name, iris_artifact)
    response = client.post("/predict", json=SETOSA)

    assert response.status_code == 200, response.text
    assert response.json()["prediction"] == "setosa"
    assert response.headers["x-model-version"] == "1"


def _without_onnx(artifact: Artifact) -> Artifact:
    manifest = artifact.manifest.model_copy(
        update={"onnx": None, "onnx_refused": "skl2onnx cannot convert it"}
    )
    return Artifact(artifact.model_bytes, manifest)


def test_under_onnx_a_model_without_an_onnx_form_is_a_503_naming_the_reason(
    make_api: MakeApi, empty_bucket: str, bucket_registry: Registry, iris_artifact: Artifact
) -> None:
    bucket_registry.publish(_without_onnx(iris_artifact), name="iris", version="1")
    bucket_registry.promote("iris", "1")
    client, service = make_api(empty_bucket)

    for path in ("/predict", "/batch_predict"):
        payload: dict[str, Any] = SETOSA if path == "/predict" else {"records": [SETOSA]}
        response = client.post(path, json=payload)
        body = _envelope(response, 503, "model_unavailable")
        assert response.headers["retry-after"] == "5"
        assert body["error"]["message"] == (
            "the model cannot be served: iris@1 has no ONNX form (skl2onnx cannot convert it); "
            "serve it with the sklearn runtime, or add one with `model-store add-onnx iris@1`"
        )
    assert service.loader.current is None
    assert client.get("/health").status_code == 200
    # The same model is served by a function on the sklearn runtime.
    sklearn_client, _ = make_api(empty_bucket, serving_runtime="sklearn")
    assert sklearn_client.post("/predict", json=SETOSA).json()["prediction"] == "setosa"


def test_under_onnx_a_warm_function_keeps_its_model_when_a_version_without_one_is_promoted(
    make_api: MakeApi, iris_bucket: str, bucket_registry: Registry, iris_artifact: Artifact
) -> None:
    client, _ = make_api(iris_bucket, model_refresh_seconds=0)
    assert client.post("/predict", json=SETOSA).headers["x-model-version"] == "1"
    bucket_registry.publish(_without_onnx(iris_artifact), name="iris", version="2")
    bucket_registry.promote("iris", "2")

    response = client.post("/predict", json=SETOSA)

    assert response.status_code == 200
    assert response.headers["x-model-version"] == "1"


@pytest.mark.parametrize("path", ["/predict", "/batch_predict"])
def test_both_runtimes_answer_alike(make_api: MakeApi, iris_bucket: str, path: str) -> None:
    records = _batch_records()
    payload: dict[str, Any] = records[0] if path == "/predict" else {"records": records}
    bodies = {}
    for runtime in ("onnx", "sklearn"):
        client, _ = make_api(iris_bucket, serving_runtime=runtime)
        response = client.post(path, json=payload)
        assert response.status_code == 200, response.text
        bodies[runtime] = response.json()
    onnx, sklearn = bodies["onnx"], bodies["sklearn"]
    for body in (onnx, sklearn):
        del body["request_id"]
    items = (
        [(onnx, sklearn)]
        if path == "/predict"
        else list(zip(onnx.pop("predictions"), sklearn.pop("predictions"), strict=True))
    )
    for a, b in items:
        pa, pb = a.pop("probabilities"), b.pop("probabilities")
        assert list(pa) == list(pb) == CLASSES
        assert all(abs(pa[c] - pb[c]) <= 1e-5 for c in CLASSES)
    # Everything but the probabilities is identical.
    assert onnx == sklearn


def test_503_when_the_alias_is_missing_then_recovers(
    make_api: MakeApi, empty_bucket: str, bucket_registry: Registry, iris_artifact: Artifact
) -> None:
    bucket_registry.publish(iris_artifact, name="iris", version="1")  # published, never promoted
    client, _ = make_api(empty_bucket)

    _assert_unavailable(client.post("/predict", json=SETOSA), 5, empty_bucket)
    _assert_unavailable(client.get("/model"), 5, empty_bucket)

    bucket_registry.promote("iris", "1")

    assert client.get("/model").status_code == 200
    response = client.post("/predict", json=SETOSA)
    assert response.status_code == 200, response.text
    assert response.json()["model"] == {"name": "iris", "version": "1"}


@pytest.mark.parametrize("runtime", ["onnx", "sklearn"])
def test_503_when_the_model_bytes_fail_the_integrity_check_then_recovers(
    make_api: MakeApi, s3: S3Client, iris_bucket: str, runtime: str
) -> None:
    # Each runtime reads only its own file: tampering with the other one changes nothing.
    original = _tamper(s3, iris_bucket, SERVED_KEYS[runtime])
    client, service = make_api(iris_bucket, serving_runtime=runtime)

    _assert_unavailable(client.post("/predict", json=SETOSA), 5, iris_bucket)
    _assert_unavailable(client.post("/batch_predict", json={"records": [SETOSA]}), 5)
    assert service.loader.current is None

    other = "sklearn" if runtime == "onnx" else "onnx"
    other_client, _ = make_api(iris_bucket, serving_runtime=other)
    assert other_client.post("/predict", json=SETOSA).status_code == 200

    s3.put_object(Bucket=iris_bucket, Key=SERVED_KEYS[runtime], Body=original)
    response = client.post("/predict", json=SETOSA)

    assert response.status_code == 200, response.text
    assert response.json()["prediction"] == "setosa"


def test_a_promotion_is_served_after_the_refresh_interval(
    make_api: MakeApi, iris_bucket: str, bucket_registry: Registry, iris_artifact_2: Artifact
) -> None:
    following, _ = make_api(iris_bucket, model_refresh_seconds=0)
    settled, _ = make_api(iris_bucket, model_refresh_seconds=3600)
    for client in (following, settled):
        assert client.post("/predict", json=SETOSA).headers["x-model-version"] == "1"

    bucket_registry.publish(iris_artifact_2, name="iris", version="2")
    bucket_registry.promote("iris", "2")

    response = following.post("/predict", json=SETOSA)
    assert response.status_code == 200
    assert response.headers["x-model-version"] == "2"
    assert response.json()["model"] == {"name": "iris", "version": "2"}
    info = following.get("/model").json()
    assert (info["version"], info["algorithm"], info["loaded"]) == (
        "2",
        iris_artifact_2.manifest.algorithm,
        True,
    )
    # Within its interval, an instance keeps serving what it has.
    assert settled.post("/predict", json=SETOSA).headers["x-model-version"] == "1"


# -- unexpected errors ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/predict", "/batch_predict"])
def test_an_unexpected_error_is_a_500_without_internals(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    def broken_predict(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(LoadedModel, "predict", broken_predict)
    payload: dict[str, Any] = SETOSA if path == "/predict" else {"records": [SETOSA]}

    response = client.post(path, json=payload)

    body = _envelope(response, 500, "internal_error")
    assert body["error"] == {
        "code": "internal_error",
        "message": "internal server error",
        "details": [],
    }
    assert "secret detail" not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text
    # The app is still healthy afterwards.
    monkeypatch.undo()
    assert client.post(path, json=payload).status_code == 200


def test_the_scoring_routes_bypass_fastapis_dependency_machinery(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/predict and /batch_predict take the Request and answer a Response: FastAPI's
    per-request dependency solving would only cost time, so they are served without it."""
    import fastapi.routing

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("solve_dependencies was called")

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", refuse)

    assert client.post("/predict", json=SETOSA).status_code == 200
    assert client.post("/batch_predict", json={"records": [SETOSA]}).status_code == 200
    assert client.get("/model").status_code == 500  # the control: an ordinary route


def test_request_ids_are_unique_per_request(client: TestClient) -> None:
    ids = {client.get("/health").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5
    assert all(ids)
