"""What `sam build` built runs as Lambda runs it, with nothing from this project's venv.

The local-Python variant of the build (`make build PYTHON_VERSION=<this Python>`) is run
under the Lambda RIE by the base interpreter in isolated mode (-I -S): the only import
paths are the built function directory, the built layers and awslambdaric.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import boto3
import pytest
from sklearn.datasets import load_iris

from devstack.rie import FunctionSpec, RieProcess
from devstack.runtime import base_python, build, runtime_dir
from model_store import Artifact
from tests.conftest import bucket_with_model
from tests.events import load_event

pytestmark = pytest.mark.slow

PROBE = """
import json, sys
sys.path[:0] = json.loads(sys.argv[1])
import sklearn, model_store, predict_api
import importlib.util as u
print(sklearn.__file__, model_store.__file__, predict_api.__file__)
print(u.find_spec("pytest"), u.find_spec("moto"))
"""


@pytest.fixture(scope="module")
def built() -> Path:
    return build()


@pytest.fixture(scope="module")
def model_bucket(moto_endpoint: str, iris_artifact: Artifact) -> str:
    return bucket_with_model(moto_endpoint, iris_artifact)


def spec(built: Path, name: str, handler: str, environment: dict[str, str]) -> FunctionSpec:
    return FunctionSpec(
        name=name,
        handler=handler,
        code_dir=built / name,
        layer_dirs=[built / "DependenciesLayer" / "python", built / "ModelStoreLayer" / "python"],
        runtime_dirs=[runtime_dir()],
        python=base_python(),
        isolated=True,
        environment=environment,
    )


@pytest.fixture
def environment(moto_endpoint: str, model_bucket: str, tmp_path: Path) -> dict[str, str]:
    return {
        "MODEL_BUCKET": model_bucket,
        "AWS_ENDPOINT_URL_S3": moto_endpoint,
        "TMPDIR": str(tmp_path),
    }


def test_the_isolated_interpreter_sees_only_the_built_artifacts(built: Path) -> None:
    paths = spec(built, "PredictApiFunction", "unused", {}).python_path()
    result = subprocess.run(
        [base_python(), "-I", "-S", "-c", PROBE, json.dumps(paths)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    files, specs = result.stdout.splitlines()
    assert all(f.startswith(str(built)) for f in files.split()), files
    assert specs == "None None"  # the project's dev dependencies are out of reach


def test_built_predict_api_answers_predict(built: Path, environment: dict[str, str]) -> None:
    function = spec(built, "PredictApiFunction", "predict_api.handler.handler", environment)
    with RieProcess(function) as rie:
        invocation = rie.invoke(load_event("predict.json"))
    assert invocation.payload["statusCode"] == 200, invocation.logs
    assert json.loads(invocation.payload["body"])["prediction"] == "setosa"
    assert invocation.report is not None


def test_built_batch_function_scores_the_s3_event(
    built: Path, environment: dict[str, str], moto_endpoint: str
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
    function = spec(built, "BatchScoringFunction", "batch_scoring.handler.handler", environment)

    with RieProcess(function) as rie:
        invocation = rie.invoke(event, timeout=120)

    assert not invocation.failed, (invocation.payload, invocation.logs)
    assert invocation.payload["results"][0]["status"] == "succeeded"
    report = client.get_object(Bucket=data_bucket, Key="reports/iris sample.json")["Body"].read()
    counts = json.loads(report)
    assert (counts["rows_in"], counts["rows_scored"], counts["rows_failed"]) == (150, 150, 0)
