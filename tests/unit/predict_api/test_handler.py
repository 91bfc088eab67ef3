"""The Mangum handler called as Lambda calls it, with the API Gateway events in events/."""

from __future__ import annotations

import base64
import importlib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from model_store import LoadedModel
from model_store.artifact import Artifact
from model_store.registry import Registry
from predict_api import observability
from predict_api.observability import logger
from tests.support.events import load_event

CLASSES = ["setosa", "versicolor", "virginica"]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: str
    raw: dict[str, Any]

    def json(self) -> Any:
        return json.loads(self.body)


def _invoke(module: ModuleType, event: dict[str, Any], context: object) -> Reply:
    """Call ``handler(event, context)`` and check the reply is an API Gateway proxy response."""
    raw: dict[str, Any] = module.handler(event, context)
    assert isinstance(raw["statusCode"], int)
    assert raw["isBase64Encoded"] is False
    headers = {name.lower(): str(value) for name, value in raw.get("headers", {}).items()}
    for name, values in (raw.get("multiValueHeaders") or {}).items():
        headers.setdefault(name.lower(), ",".join(values))
    return Reply(raw["statusCode"], headers, raw["body"], raw)


def _request_id(event: dict[str, Any]) -> str:
    request_id: str = event["requestContext"]["requestId"]
    return request_id


def _envelope(reply: Reply, status: int, code: str, event: dict[str, Any]) -> dict[str, Any]:
    assert reply.status == status, reply.body
    assert reply.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = reply.json()
    assert set(body) == {"error", "request_id"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["request_id"] == _request_id(event)
    assert reply.headers["x-request-id"] == _request_id(event)
    return body


def _get_event(path: str, *, stage: str = "Prod") -> dict[str, Any]:
    """events/health.json turned into GET PATH, as API Gateway would send it under STAGE."""
    event = load_event("health.json")
    event["path"] = path
    event["resource"] = path
    event["requestContext"]["resourcePath"] = path
    event["requestContext"]["path"] = f"/{stage}{path}"
    event["requestContext"]["requestId"] = f"req-{path.strip('/').replace('/', '-')}-0001"
    return event


def _stdout_json(text: str) -> list[dict[str, Any]]:
    """Every stdout line that is a JSON object (log records and EMF documents)."""
    objects = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                objects.append(data)
    return objects


class _CurrentStdout:
    """Writes to whatever ``sys.stdout`` is at the time of the write."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def captured_logs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Send the function's log handler to the stdout that capsys captures.

    Powertools binds its stream to the ``sys.stdout`` of the moment the logger is created
    (at import, long before this test); Lambda ships that stdout to CloudWatch Logs.
    """
    monkeypatch.setattr(logger.logger_handler, "stream", _CurrentStdout())


# -- the events in events/ -----------------------------------------------------------------


def test_predict_event(handler_module: ModuleType, lambda_context: object) -> None:
    event = load_event("predict.json")

    reply = _invoke(handler_module, event, lambda_context)

    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["prediction"] == "setosa"
    assert list(body["probabilities"]) == CLASSES
    assert body["model"] == {"name": "iris", "version": "1"}
    assert body["request_id"] == _request_id(event)
    assert reply.headers["x-model-version"] == "1"
    assert reply.headers["x-request-id"] == _request_id(event)
    assert reply.headers["content-type"] == "application/json"


def test_batch_predict_event(handler_module: ModuleType, lambda_context: object) -> None:
    event = load_event("batch_predict.json")

    reply = _invoke(handler_module, event, lambda_context)

    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["count"] == 3
    assert [p["prediction"] for p in body["predictions"]] == CLASSES
    assert body["request_id"] == _request_id(event)
    assert reply.headers["x-model-version"] == "1"


def test_predict_invalid_event_names_each_bad_field(
    handler_module: ModuleType, lambda_context: object
) -> None:
    event = load_event("predict_invalid.json")

    reply = _invoke(handler_module, event, lambda_context)

    body = _envelope(reply, 422, "invalid_input", event)
    found = {tuple(d["loc"]): d["type"] for d in body["error"]["details"]}
    assert found == {
        ("body", "sepal_length"): "float_type",
        ("body", "petal_width"): "missing",
        ("body", "colour"): "extra_forbidden",
    }


def test_model_event(handler_module: ModuleType, lambda_context: object) -> None:
    event = load_event("model.json")

    reply = _invoke(handler_module, event, lambda_context)

    assert reply.status == 200, reply.body
    info = reply.json()
    assert (info["name"], info["version"], info["loaded"]) == ("iris", "1", False)
    assert [f["name"] for f in info["features"]] == FEATURES
    assert info["classes"] == CLASSES
    assert reply.headers["x-request-id"] == _request_id(event)


def test_health_event_loads_nothing(handler_module: ModuleType, lambda_context: object) -> None:
    event = load_event("health.json")

    reply = _invoke(handler_module, event, lambda_context)

    assert reply.status == 200, reply.body
    assert reply.json() == {"status": "ok"}
    assert reply.headers["x-request-id"] == _request_id(event)
    assert handler_module.app.state.service.loader.current is None


def test_the_model_loads_once_across_invocations(
    handler_module: ModuleType, lambda_context: object
) -> None:
    loader = handler_module.app.state.service.loader
    first = _invoke(handler_module, load_event("predict.json"), lambda_context)
    loaded = loader.current

    second = _invoke(handler_module, load_event("batch_predict.json"), lambda_context)

    assert (first.status, second.status) == (200, 200)
    assert loaded is not None
    assert loader.current is loaded


# -- bodies --------------------------------------------------------------------------------


def test_a_base64_encoded_body_is_decoded(
    handler_module: ModuleType, lambda_context: object
) -> None:
    event = load_event("predict.json")
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True

    reply = _invoke(handler_module, event, lambda_context)

    assert reply.status == 200, reply.body
    assert reply.json()["prediction"] == "setosa"
    assert reply.json()["request_id"] == _request_id(event)


def test_a_base64_encoded_invalid_body_is_422(
    handler_module: ModuleType, lambda_context: object
) -> None:
    event = load_event("predict.json")
    event["body"] = base64.b64encode(b'{"sepal_length": 5.1,').decode()
    event["isBase64Encoded"] = True

    reply = _invoke(handler_module, event, lambda_context)

    body = _envelope(reply, 422, "invalid_input", event)
    assert [d["type"] for d in body["error"]["details"]] == ["json_invalid"]


def test_a_base64_encoded_nan_is_422(handler_module: ModuleType, lambda_context: object) -> None:
    event = load_event("predict.json")
    raw = b'{"sepal_length": NaN, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}'
    event["body"] = base64.b64encode(raw).decode()
    event["isBase64Encoded"] = True

    reply = _invoke(handler_module, event, lambda_context)

    body = _envelope(reply, 422, "invalid_input", event)
    assert [(tuple(d["loc"]), d["type"]) for d in body["error"]["details"]] == [
        (("body", "sepal_length"), "finite_number")
    ]


# -- docs behind the stage -----------------------------------------------------------------


def test_docs_under_the_stage_fetch_the_staged_openapi(
    handler_module: ModuleType, lambda_context: object
) -> None:
    reply = _invoke(handler_module, _get_event("/docs"), lambda_context)

    assert reply.status == 200, reply.body
    assert reply.headers["content-type"].startswith("text/html")
    assert "/Prod/openapi.json" in reply.body
    assert "'/openapi.json'" not in reply.body
    assert '"/openapi.json"' not in reply.body


def test_the_docs_page_loads_swagger_ui_at_one_version_checked_by_hash(
    handler_module: ModuleType, lambda_context: object
) -> None:
    reply = _invoke(handler_module, _get_event("/docs"), lambda_context)

    assets = re.findall(r'(?:src|href)="(https://[^"]+)"([^>]*)>', reply.body)
    assert {url.rsplit("/", 1)[-1] for url, _ in assets} == {
        "swagger-ui-bundle.js",
        "swagger-ui.css",
    }
    for url, attributes in assets:
        assert re.search(r"swagger-ui-dist@\d+\.\d+\.\d+/", url), url  # no floating version
        assert re.search(r'integrity="sha384-[A-Za-z0-9+/]{64}"', attributes), url
        assert 'crossorigin="anonymous"' in attributes, url


def test_openapi_under_the_stage_names_the_stage_as_server(
    handler_module: ModuleType, lambda_context: object
) -> None:
    reply = _invoke(handler_module, _get_event("/openapi.json"), lambda_context)

    assert reply.status == 200, reply.body
    document = reply.json()
    assert document["servers"] == [{"url": "/Prod"}]
    assert "/predict" in document["paths"]
    record = document["components"]["schemas"]["IrisRecord"]
    assert list(record["properties"]) == FEATURES
    assert handler_module.app.state.service.loader.current is None


def test_each_request_gets_the_servers_of_its_own_prefix(
    handler_module: ModuleType, lambda_context: object
) -> None:
    # One warm instance behind the stage URL and behind custom domains: no request's
    # prefix leaks into the document another request gets.
    seen = []
    for full_path in ("/Prod/openapi.json", "/openapi.json", "/v1/openapi.json", "/openapi.json"):
        event = _get_event("/openapi.json")
        event["requestContext"]["path"] = full_path
        reply = _invoke(handler_module, event, lambda_context)
        assert reply.status == 200, reply.body
        seen.append(reply.json().get("servers"))

    assert seen == [[{"url": "/Prod"}], None, [{"url": "/v1"}], None]


def test_docs_without_a_stage_prefix(handler_module: ModuleType, lambda_context: object) -> None:
    # A custom domain without a base path mapping: the browser sees /docs and /openapi.json.
    event = _get_event("/docs")
    event["requestContext"]["path"] = "/docs"

    reply = _invoke(handler_module, event, lambda_context)

    assert reply.status == 200, reply.body
    assert "'/openapi.json'" in reply.body or '"/openapi.json"' in reply.body
    assert "/Prod/" not in reply.body


def test_an_unknown_path_is_404_in_the_envelope(
    handler_module: ModuleType, lambda_context: object
) -> None:
    event = _get_event("/no/such/route")

    reply = _invoke(handler_module, event, lambda_context)

    body = _envelope(reply, 404, "not_found", event)
    assert body["error"]["message"] == "no such route"


def test_a_wrong_method_is_405_in_the_envelope(
    handler_module: ModuleType, lambda_context: object
) -> None:
    event = load_event("predict.json")
    event["httpMethod"] = "GET"
    event["requestContext"]["httpMethod"] = "GET"
    event["body"] = None

    reply = _invoke(handler_module, event, lambda_context)

    _envelope(reply, 405, "method_not_allowed", event)


def test_the_lambda_request_id_is_used_when_the_event_has_none(
    handler_module: ModuleType, lambda_context: Any
) -> None:
    event = load_event("health.json")
    del event["requestContext"]["requestId"]

    reply = _invoke(handler_module, event, lambda_context)

    assert reply.status == 200
    assert reply.headers["x-request-id"] == lambda_context.aws_request_id


def _reload_handler(cache_dir: Path) -> ModuleType:
    import predict_api.handler

    module = importlib.reload(predict_api.handler)
    module.app.state.service.loader.cache_dir = cache_dir
    return module


def test_503_through_the_handler_then_the_model_appears(
    set_api_env: Callable[[str], None],
    empty_bucket: str,
    bucket_registry: Registry,
    iris_artifact: Artifact,
    tmp_path: Path,
    lambda_context: object,
) -> None:
    set_api_env(empty_bucket)
    module = _reload_handler(tmp_path / "cache")
    event = load_event("predict.json")

    unavailable = _invoke(module, event, lambda_context)

    body = _envelope(unavailable, 503, "model_unavailable", event)
    assert unavailable.headers["retry-after"] == "5"
    assert body["error"]["message"] == "the model cannot be loaded right now; retry later"
    assert empty_bucket not in unavailable.body

    bucket_registry.publish(iris_artifact, name="iris", version="1")
    bucket_registry.promote("iris", "1")
    recovered = _invoke(module, load_event("predict.json"), lambda_context)

    assert recovered.status == 200, recovered.body
    assert recovered.json()["prediction"] == "setosa"


def test_an_unexpected_error_is_a_500_reply_not_a_crash(
    handler_module: ModuleType, lambda_context: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_predict(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(LoadedModel, "predict", broken_predict)
    event = load_event("predict.json")

    reply = _invoke(handler_module, event, lambda_context)

    body = _envelope(reply, 500, "internal_error", event)
    assert body["error"]["message"] == "internal server error"
    assert "secret detail" not in reply.body
    assert "Traceback" not in reply.body


# -- logs and metrics ----------------------------------------------------------------------


@pytest.mark.usefixtures("captured_logs")
def test_a_failed_request_logs_one_json_line_with_the_request_id_and_cold_start(
    handler_module: ModuleType, lambda_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    event = load_event("predict_invalid.json")

    reply = _invoke(handler_module, event, lambda_context)

    assert reply.status == 422
    records = [r for r in _stdout_json(capsys.readouterr().out) if "_aws" not in r]
    request_lines = [r for r in records if r.get("message") == "request"]
    assert len(request_lines) == 1, records
    line = request_lines[0]
    assert line["request_id"] == _request_id(event)
    assert isinstance(line["cold_start"], bool)
    assert line["function_request_id"] == lambda_context.aws_request_id
    assert line["function_name"] == lambda_context.function_name
    assert line["level"] == "INFO"
    assert (line["method"], line["status"]) == ("POST", 422)
    assert line["path"].endswith("/predict")
    assert line["service"] == "predict-api"
    assert line["duration_ms"] > 0
    # Every record this invocation logged carries its request id.
    assert records
    assert all(r.get("request_id") == _request_id(event) for r in records)


@pytest.mark.usefixtures("captured_logs")
def test_a_successful_request_logs_its_line_at_debug_only(
    handler_module: ModuleType, lambda_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    event = load_event("predict.json")
    assert _invoke(handler_module, event, lambda_context).status == 200
    at_info = [r for r in _stdout_json(capsys.readouterr().out) if r.get("message") == "request"]

    logger.setLevel("DEBUG")
    try:
        assert _invoke(handler_module, event, lambda_context).status == 200
    finally:
        logger.setLevel("INFO")
    at_debug = [r for r in _stdout_json(capsys.readouterr().out) if r.get("message") == "request"]

    assert at_info == []
    assert len(at_debug) == 1
    assert (at_debug[0]["level"], at_debug[0]["status"]) == ("DEBUG", 200)
    assert at_debug[0]["request_id"] == _request_id(event)


@pytest.mark.usefixtures("captured_logs")
def test_the_next_invocation_logs_its_own_request_id(
    handler_module: ModuleType, lambda_context: object, capsys: pytest.CaptureFixture[str]
) -> None:
    _invoke(handler_module, load_event("predict.json"), lambda_context)
    capsys.readouterr()
    event = load_event("predict_invalid.json")
    event["requestContext"]["requestId"] = "the-second-request"

    _invoke(handler_module, event, lambda_context)

    records = [r for r in _stdout_json(capsys.readouterr().out) if "_aws" not in r]
    assert [r["request_id"] for r in records if r.get("message") == "request"] == [
        "the-second-request"
    ]
    assert all(r["cold_start"] is False for r in records if "cold_start" in r)


def _emf(text: str) -> list[dict[str, Any]]:
    return [r for r in _stdout_json(text) if "_aws" in r]


def _metric_names(document: dict[str, Any]) -> set[str]:
    return {
        metric["Name"]
        for directive in document["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]
    }


def _dimensions(document: dict[str, Any]) -> set[str]:
    return {
        name
        for directive in document["_aws"]["CloudWatchMetrics"]
        for dimension_set in directive["Dimensions"]
        for name in dimension_set
    }


def test_emf_metrics_after_predictions(
    monkeypatch: pytest.MonkeyPatch,
    handler_module: ModuleType,
    lambda_context: object,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(
        observability.telemetry, "cold_start", False
    )  # ColdStart: test_observability.py
    capsys.readouterr()

    _invoke(handler_module, load_event("predict.json"), lambda_context)
    first = _emf(capsys.readouterr().out)
    _invoke(handler_module, load_event("batch_predict.json"), lambda_context)
    second = _emf(capsys.readouterr().out)
    _invoke(handler_module, load_event("health.json"), lambda_context)
    third = _emf(capsys.readouterr().out)

    assert len(first) == 1, first
    cold = first[0]
    assert _metric_names(cold) == {"Predictions", "ModelLoadSeconds"}
    assert "model_version" in _dimensions(cold)
    assert cold["model_version"] == "1"
    assert cold["Predictions"] == [1.0]
    assert len(cold["ModelLoadSeconds"]) == 1
    assert cold["ModelLoadSeconds"][0] > 0
    assert cold["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "SklearnServerless"

    assert len(second) == 1, second
    warm = second[0]
    # The model is already loaded: no load time, and this invocation's counts only.
    assert _metric_names(warm) == {"Predictions", "BatchSize"}
    assert (warm["model_version"], warm["Predictions"], warm["BatchSize"]) == ("1", [3.0], [3.0])

    assert third == []  # nothing predicted, nothing emitted
