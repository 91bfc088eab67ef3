"""Shared helpers for the batch scoring tests: the iris model, iris CSVs, moto buckets.

The model is the session's trained iris artifact loaded through the real gate. S3 tests
get uuid-named buckets on the session's moto server (over real HTTP).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from model_store.artifact import Artifact
from model_store.gate import LoadedModel, load_artifact_dir
from model_store.registry import Registry, open_registry
from tests.support.s3 import REGISTRY_PREFIX, new_bucket

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@pytest.fixture(scope="session")
def loaded_model(iris_artifact: Artifact, tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """The session's iris model, through load_artifact_dir (version "local")."""
    return load_artifact_dir(iris_artifact.write(tmp_path_factory.mktemp("batch-artifact")))


# -- S3 -------------------------------------------------------------------------------


@pytest.fixture
def data_bucket(s3: S3Client) -> str:
    """An empty data bucket (incoming/, predictions/, errors/, reports/)."""
    return new_bucket(s3, "data")


@pytest.fixture
def registry_bucket(s3: S3Client) -> str:
    """An empty bucket for a model registry under REGISTRY_PREFIX."""
    return new_bucket(s3, "models")


@pytest.fixture
def iris_registry(s3: S3Client, registry_bucket: str, iris_artifact: Artifact) -> Registry:
    """iris version "1" published in the model bucket and promoted to production."""
    registry = open_registry(f"s3://{registry_bucket}/{REGISTRY_PREFIX}", s3_client=s3)
    registry.publish(iris_artifact, name="iris", version="1")
    registry.promote("iris", "1", alias="production")
    return registry
