"""Shared fixtures: fake AWS credentials, a tiny trained iris artifact, a moto server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_store.artifact import Artifact
from model_store.training import build_artifact, load_iris_dataset, train

# Never let a test reach a real AWS account, whatever the developer's shell holds.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
)
for _var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "MODEL_STORE_REGISTRY"):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def iris_artifact() -> Artifact:
    """A real iris model, trained on one small grid so the session stays fast."""
    result = train(load_iris_dataset(), algorithms=("logistic_regression",), cv_folds=3)
    return build_artifact(result, name="iris")


@pytest.fixture(scope="session")
def iris_artifact_2() -> Artifact:
    """A second, different iris model (another algorithm), for promote/rollback tests."""
    result = train(load_iris_dataset(), algorithms=("decision_tree",), cv_folds=3)
    return build_artifact(result, name="iris")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server over real HTTP on a free loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def local_build() -> Path:
    """`make build` for this machine's Python, once per session (what `make local` runs)."""
    from devstack import runtime

    return runtime.build(quiet=True)


def bucket_with_model(endpoint: str, artifact: Artifact, prefix: str = "") -> str:
    """A new moto bucket whose registry (under PREFIX) has ARTIFACT as iris@1, promoted."""
    import uuid

    import boto3

    from model_store import open_registry

    bucket = f"models-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=bucket)
    registry = open_registry(f"s3://{bucket}/{prefix}", s3_client=client)
    registry.publish(artifact, name="iris", version="1")
    registry.promote("iris", "1")
    return bucket


@pytest.fixture
def artifact_dir(tmp_path: Path, iris_artifact: Artifact) -> Path:
    return iris_artifact.write(tmp_path / "artifact")
