"""A whole registry cycle against a moto server over real HTTP, checked at the S3 keys."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

import boto3
import pytest

from model_store.artifact import Artifact
from model_store.exceptions import NothingToRollBackError, VersionExistsError
from model_store.registry import Registry, open_registry

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREFIX = "ml/registry"


@pytest.fixture
def raw_client(moto_endpoint: str) -> S3Client:
    return boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)


@pytest.fixture
def bucket(raw_client: S3Client) -> str:
    name = f"cycle-{uuid.uuid4().hex}"
    raw_client.create_bucket(Bucket=name)
    return name


def _keys(client: S3Client, bucket: str) -> set[str]:
    keys: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.update(item["Key"] for item in page.get("Contents", []))
    return keys


def _get(client: S3Client, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.mark.slow
def test_publish_promote_show_promote_rollback_over_http(
    raw_client: S3Client,
    bucket: str,
    moto_endpoint: str,
    iris_artifact: Artifact,
    iris_artifact_2: Artifact,
) -> None:
    # The registry gets its own client: nothing is shared with the checking client but HTTP.
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)
    registry: Registry = open_registry(f"s3://{bucket}/{PREFIX}", s3_client=client)

    first = registry.publish(iris_artifact, name="iris", version="1")
    second = registry.publish(iris_artifact_2, name="iris", version="2")
    assert (first.version, second.version) == ("1", "2")
    assert registry.list_models() == ["iris"]
    assert registry.list_versions("iris") == ["1", "2"]
    with pytest.raises(VersionExistsError):
        registry.publish(iris_artifact_2, name="iris", version="1")

    # Promote v1 and "show" what production serves.
    registry.promote("iris", "1")
    shown = registry.read_manifest("iris", registry.resolve_alias("iris", "production"))
    assert (shown.name, shown.version) == ("iris", "1")
    assert shown.sha256 == iris_artifact.manifest.sha256
    assert shown.algorithm == iris_artifact.manifest.algorithm

    registry.promote("iris", "2")
    shown = registry.read_manifest("iris", registry.resolve_alias("iris", "production"))
    assert shown.version == "2"
    assert shown.sha256 == iris_artifact_2.manifest.sha256
    assert registry.read_model_bytes("iris", "2") == iris_artifact_2.model_bytes

    assert registry.rollback("iris").version == "1"
    assert registry.resolve_alias("iris", "production") == "1"
    assert registry.read_model_bytes("iris", "1") == iris_artifact.model_bytes
    with pytest.raises(NothingToRollBackError):
        registry.rollback("iris")

    # The objects sit exactly where design.md says, under the prefix.
    base = f"{PREFIX}/models/iris"
    assert _keys(raw_client, bucket) == {
        f"{base}/1/model.joblib",
        f"{base}/1/model.onnx",
        f"{base}/1/manifest.json",
        f"{base}/2/model.joblib",
        f"{base}/2/model.onnx",
        f"{base}/2/manifest.json",
        f"{base}/aliases/production.json",
    }
    assert _get(raw_client, bucket, f"{base}/1/model.joblib") == iris_artifact.model_bytes
    assert _get(raw_client, bucket, f"{base}/1/model.onnx") == iris_artifact.onnx_bytes
    assert _get(raw_client, bucket, f"{base}/2/model.joblib") == iris_artifact_2.model_bytes
    manifest = json.loads(_get(raw_client, bucket, f"{base}/2/manifest.json"))
    assert (manifest["name"], manifest["version"]) == ("iris", "2")
    assert manifest["sha256"] == iris_artifact_2.manifest.sha256
    alias = json.loads(_get(raw_client, bucket, f"{base}/aliases/production.json"))
    assert (alias["name"], alias["alias"]) == ("iris", "production")
    assert [(e["action"], e["version"]) for e in alias["history"]] == [
        ("promote", "1"),
        ("promote", "2"),
        ("rollback", "1"),
    ]
