"""What `sam build` built runs as Lambda runs it, with nothing from this project's venv.

The local-Python variant of the build (`make build PYTHON_VERSION=<this Python>`) is run
under the Lambda RIE by the base interpreter in isolated mode (-I -S): the only import
paths are the built function directory, the built layers the serving runtime picks, and
awslambdaric. Both runtimes are run; the onnx one on a layer that cannot unpickle.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from sklearn.datasets import load_iris

from devstack.rie import FunctionSpec, RieProcess
from devstack.runtime import base_python, runtime_dir
from model_store import Artifact
from tests.support.events import EVENTS_DIR, load_event
from tests.support.s3 import bucket_with_model

pytestmark = pytest.mark.slow

DEPENDENCIES = {"onnx": "OnnxDependenciesLayer", "sklearn": "SklearnDependenciesLayer"}
API_EVENTS = sorted(
    p.name
    for p in EVENTS_DIR.glob("*.json")
    if "httpMethod" in json.loads(p.read_text())  # API Gateway proxy events
)

PROBE = """
import json, sys
sys.path[:0] = json.loads(sys.argv[1])
import importlib.util as u
import model_store, predict_api
found = {name: u.find_spec(name) is not None for name in sys.argv[2].split(",")}
print(json.dumps({"files": [model_store.__file__, predict_api.__file__], "found": found}))
"""
PROBED = ("sklearn", "scipy", "joblib", "onnxruntime", "numpy", "pytest", "moto", "skl2onnx")


@pytest.fixture(scope="module")
def built(local_build: Path) -> Path:
    return local_build


@pytest.fixture(scope="module")
def iris_bucket(moto_endpoint: str, iris_artifact: Artifact) -> str:
    return bucket_with_model(moto_endpoint, iris_artifact)


def spec(
    built: Path, name: str, handler: str, environment: dict[str, str], runtime: str
) -> FunctionSpec:
    return FunctionSpec(
        name=name,
        handler=handler,
        code_dir=built / name,
        layer_dirs=[built / DEPENDENCIES[runtime] / "python", built / "ModelStoreLayer" / "python"],
        runtime_dirs=[runtime_dir()],
        python=base_python(),
        isolated=True,
        environment={**environment, "SERVING_RUNTIME": runtime},
    )


@pytest.fixture
def environment(moto_endpoint: str, iris_bucket: str, tmp_path: Path) -> dict[str, str]:
    return {
        "MODEL_BUCKET": iris_bucket,
        "AWS_ENDPOINT_URL_S3": moto_endpoint,
        "TMPDIR": str(tmp_path),
    }


@pytest.mark.parametrize("runtime", sorted(DEPENDENCIES))
def test_the_isolated_interpreter_sees_only_the_built_artifacts(built: Path, runtime: str) -> None:
    paths = spec(built, "PredictApiFunction", "unused", {}, runtime).python_path()
    result = subprocess.run(
        [base_python(), "-I", "-S", "-c", PROBE, json.dumps(paths), ",".join(PROBED)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    probe = json.loads(result.stdout)
    assert all(f.startswith(str(built)) for f in probe["files"]), probe
    found = probe["found"]
    # The project's dev and tooling dependencies are out of reach.
    assert not any(found[name] for name in ("pytest", "moto", "skl2onnx"))
    assert found["numpy"]
    if runtime == "onnx":
        assert found["onnxruntime"]
        assert not any(found[name] for name in ("sklearn", "scipy", "joblib"))
    else:
        assert all(found[name] for name in ("sklearn", "scipy", "joblib"))


@pytest.mark.parametrize("runtime", sorted(DEPENDENCIES))
def test_built_predict_api_answers_predict(
    built: Path, environment: dict[str, str], runtime: str
) -> None:
    function = spec(
        built, "PredictApiFunction", "predict_api.handler.handler", environment, runtime
    )
    with RieProcess(function) as rie:
        invocation = rie.invoke(load_event("predict.json"))
    assert invocation.payload["statusCode"] == 200, invocation.logs
    assert json.loads(invocation.payload["body"])["prediction"] == "setosa"
    assert invocation.report is not None
    assert any(f"{runtime} runtime" in line for line in invocation.logs), invocation.logs


@pytest.fixture(scope="module")
def api_answers(
    built: Path, moto_endpoint: str, iris_bucket: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, dict[str, Any]]]:
    """{runtime: {event file: response}} from one environment per runtime, events in order."""
    answers: dict[str, dict[str, dict[str, Any]]] = {}
    for runtime in DEPENDENCIES:
        environment = {
            "MODEL_BUCKET": iris_bucket,
            "AWS_ENDPOINT_URL_S3": moto_endpoint,
            "TMPDIR": str(tmp_path_factory.mktemp(f"tmp-{runtime}")),
        }
        function = spec(
            built, "PredictApiFunction", "predict_api.handler.handler", environment, runtime
        )
        with RieProcess(function) as rie:
            answers[runtime] = {name: rie.invoke(load_event(name)).payload for name in API_EVENTS}
    return answers


@pytest.mark.parametrize("event", API_EVENTS)
def test_both_builds_answer_every_event_alike(
    api_answers: dict[str, dict[str, dict[str, Any]]], event: str
) -> None:
    """Same status, headers and body; probabilities within the proof's tolerance (1e-5)."""
    onnx, sklearn = api_answers["onnx"][event], api_answers["sklearn"][event]
    assert onnx["statusCode"] == sklearn["statusCode"], (onnx, sklearn)
    # Probabilities print to different lengths; every other header is the same.
    assert onnx["headers"].pop("content-length") == str(len(onnx["body"].encode()))
    assert sklearn["headers"].pop("content-length") == str(len(sklearn["body"].encode()))
    assert onnx["headers"] == sklearn["headers"]
    onnx_body, sklearn_body = json.loads(onnx["body"]), json.loads(sklearn["body"])
    onnx_probabilities = _pop_probabilities(onnx_body)
    sklearn_probabilities = _pop_probabilities(sklearn_body)
    assert onnx_body == sklearn_body
    assert len(onnx_probabilities) == len(sklearn_probabilities)
    for a, b in zip(onnx_probabilities, sklearn_probabilities, strict=True):
        assert list(a) == list(b)
        assert all(abs(a[c] - b[c]) <= 1e-5 for c in a)


def _pop_probabilities(body: Any) -> list[dict[str, float]]:
    """Remove every probabilities mapping from BODY (in place), in order."""
    found: list[dict[str, float]] = []
    if isinstance(body, dict):
        if isinstance(body.get("probabilities"), dict):
            found.append(body.pop("probabilities"))
        for value in body.values():
            found += _pop_probabilities(value)
    elif isinstance(body, list):
        for item in body:
            found += _pop_probabilities(item)
    return found


@pytest.mark.parametrize("runtime", sorted(DEPENDENCIES))
def test_built_batch_function_scores_the_s3_event(
    built: Path, environment: dict[str, str], moto_endpoint: str, runtime: str
) -> None:
    data_bucket = f"data-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    client.create_bucket(Bucket=data_bucket)
    lines = ["sepal_length,sepal_width,petal_length,petal_width"]
    lines += [",".join(str(v) for v in row) for row in load_iris().data]
    body = "\n".join(lines).encode()
    client.put_object(Bucket=data_bucket, Key="incoming/iris sample.csv", Body=body)
    event = load_event("s3_put.json")
    event["Records"][0]["s3"]["bucket"]["name"] = data_bucket
    function = spec(
        built, "BatchScoringFunction", "batch_scoring.handler.handler", environment, runtime
    )

    with RieProcess(function) as rie:
        invocation = rie.invoke(event, timeout=120)

    assert not invocation.failed, (invocation.payload, invocation.logs)
    assert invocation.payload["results"][0]["status"] == "succeeded"
    report = client.get_object(Bucket=data_bucket, Key="reports/iris sample.json")["Body"].read()
    counts = json.loads(report)
    assert (counts["rows_in"], counts["rows_scored"], counts["rows_failed"]) == (150, 150, 0)
