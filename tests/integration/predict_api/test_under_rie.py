"""The API handler run as Lambda runs it: the Runtime Interface Emulator + awslambdaric.

The model sits in a moto server bucket reached over HTTP; the function process is a
separate interpreter started by the emulator, exactly as in a Lambda sandbox.
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from devstack.rie import FunctionSpec, RieProcess
from model_store import Artifact, open_registry
from tests.support.events import load_event
from tests.support.s3 import bucket_with_model

pytestmark = pytest.mark.slow  # the function under the Lambda RIE

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def iris_bucket(moto_endpoint: str, iris_artifact: Artifact) -> str:
    return bucket_with_model(moto_endpoint, iris_artifact, prefix="registry")


@pytest.fixture
def rie(moto_endpoint: str, iris_bucket: str, tmp_path: Path) -> Iterator[RieProcess]:
    spec = FunctionSpec(
        name="PredictApiFunction",
        handler="predict_api.handler.handler",
        code_dir=ROOT / "functions" / "predict_api",
        python=sys.executable,
        environment={
            "MODEL_BUCKET": iris_bucket,
            "MODEL_PREFIX": "registry",
            "AWS_ENDPOINT_URL_S3": moto_endpoint,
            "TMPDIR": str(tmp_path),  # a fresh /tmp, as in a new execution environment
        },
    )
    with RieProcess(spec) as process:
        yield process


def model_downloads(records: list[logging.LogRecord]) -> int:
    """GETs of a model file (model.onnx or model.joblib) that the moto server answered."""
    return sum(
        1
        for r in records
        if r.name == "werkzeug"
        and "GET /" in r.getMessage()
        and ("model.onnx" in r.getMessage() or "model.joblib" in r.getMessage())
    )


def test_first_invocation_loads_the_model_and_the_second_reuses_it(
    rie: RieProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="werkzeug")

    first = rie.invoke(load_event("predict.json"))
    assert first.payload["statusCode"] == 200, first.payload
    body = json.loads(first.payload["body"])
    assert body["prediction"] == "setosa"
    assert body["model"] == {"name": "iris", "version": "1"}
    assert body["request_id"] == load_event("predict.json")["requestContext"]["requestId"]
    assert model_downloads(caplog.records) == 1
    assert first.report is not None
    assert first.report.init_ms is not None  # a cold start: the sandbox initialised
    assert first.report.memory_mb == 512
    assert any("loaded model iris version 1" in line for line in first.logs)

    second = rie.invoke(load_event("batch_predict.json"))
    assert second.payload["statusCode"] == 200
    predictions = json.loads(second.payload["body"])["predictions"]
    assert [p["prediction"] for p in predictions] == ["setosa", "versicolor", "virginica"]
    assert model_downloads(caplog.records) == 1  # warm: the model stayed in memory
    assert second.report is not None
    assert second.report.init_ms is None
    assert not any("loaded model" in line for line in second.logs)
    assert rie.alive


def test_logs_are_json_with_the_request_id_and_metrics_are_emf(rie: RieProcess) -> None:
    invocation = rie.invoke(load_event("predict.json"))
    records = [json.loads(line) for line in invocation.logs if line.startswith("{")]
    assert all(r["request_id"] == _request_id("predict.json") for r in records if "level" in r)
    assert [r for r in records if r.get("message") == "request"] == []  # successes: DEBUG
    invalid = rie.invoke(load_event("predict_invalid.json"))
    lines = [json.loads(line) for line in invalid.logs if line.startswith("{")]
    request_lines = [r for r in lines if r.get("message") == "request"]
    assert len(request_lines) == 1, invalid.logs
    assert request_lines[0]["request_id"] == _request_id("predict_invalid.json")
    assert request_lines[0]["status"] == 422
    assert request_lines[0]["cold_start"] is False
    emf = [r for r in records if "_aws" in r]
    assert emf, invocation.logs
    names = {m["Name"] for d in emf[0]["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"Predictions", "ModelLoadSeconds"} <= names
    assert emf[0]["model_version"] == "1"


def _request_id(event: str) -> str:
    request_id: str = load_event(event)["requestContext"]["requestId"]
    return request_id


def test_the_api_answers_503_until_the_model_exists_then_recovers(
    moto_endpoint: str, tmp_path: Path, iris_artifact: Artifact
) -> None:
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    client.create_bucket(Bucket=bucket)
    spec = FunctionSpec(
        name="PredictApiFunction",
        handler="predict_api.handler.handler",
        code_dir=ROOT / "functions" / "predict_api",
        python=sys.executable,
        environment={
            "MODEL_BUCKET": bucket,
            "AWS_ENDPOINT_URL_S3": moto_endpoint,
            "TMPDIR": str(tmp_path),
        },
    )
    with RieProcess(spec) as process:
        missing = process.invoke(load_event("predict.json"))
        assert missing.payload["statusCode"] == 503
        assert missing.payload["headers"]["retry-after"] == "5"
        registry = open_registry(f"s3://{bucket}", s3_client=client)
        registry.publish(iris_artifact, name="iris", version="1")
        registry.promote("iris", "1")
        recovered = process.invoke(load_event("predict.json"))
        assert recovered.payload["statusCode"] == 200
        assert process.invocations == 2
