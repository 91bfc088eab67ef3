"""Shared fixtures: fake AWS credentials, a tiny trained iris artifact, a moto server."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from model_store.artifact import Artifact

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


def pytest_collection_finish() -> None:
    """Freeze what collection built (modules, classes, functions: ~300k objects).

    They live for the whole run, and every full collection during the tests would walk
    them again.
    """
    gc.collect()
    gc.freeze()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish() -> None:
    """Collect once, then freeze what survives.

    By the end a worker holds ~700k objects, and each full collection after this point
    (pytest's own at unconfigure, the interpreter's at exit) walked them all again: ~5 s a
    worker of waiting at the end of every run. This collection finds what those would
    (unraisable exceptions included, which pytest still reports); the later ones skip the
    frozen survivors.
    """
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session")
def iris_artifact() -> Artifact:
    """A real iris model, trained on one small grid so the session stays fast."""
    # Imported here, not at the top: scikit-learn's ~2 s import would delay every
    # pytest-xdist worker's start, since the controlling process loads this file too.
    from model_store.training import build_artifact, load_iris_dataset, train

    result = train(load_iris_dataset(), algorithms=("logistic_regression",), cv_folds=3)
    return build_artifact(result, name="iris")


@pytest.fixture(scope="session")
def iris_artifact_2() -> Artifact:
    """A second, different iris model (another algorithm), for promote/rollback tests."""
    from model_store.training import build_artifact, load_iris_dataset, train

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


@pytest.fixture
def s3(moto_endpoint: str) -> S3Client:
    """An S3 client of the tests' own on the session's moto server, to set up and inspect
    buckets (the code under test makes its own)."""
    return boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)


@pytest.fixture(scope="session")
def local_build() -> Path:
    """`make build` for this machine's Python, once per session (what `make local` runs)."""
    from devstack import runtime

    return runtime.build(quiet=True)


@pytest.fixture
def artifact_dir(tmp_path: Path, iris_artifact: Artifact) -> Path:
    return iris_artifact.write(tmp_path / "artifact")
