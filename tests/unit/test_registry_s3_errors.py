"""S3 faults surface as typed model_store errors with clear messages, never bare botocore."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.stub import Stubber

from model_store.artifact import Artifact
from model_store.aws import s3_client
from model_store.exceptions import InvalidNameError, RegistryError
from model_store.registry import LocalStore, Registry, S3Store, open_registry

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

Operation = Callable[[Registry], object]

OPERATIONS: dict[str, Operation] = {
    "read_manifest": lambda r: r.read_manifest("iris", "1"),
    "read_model_bytes": lambda r: r.read_model_bytes("iris", "1"),
    "list_models": lambda r: r.list_models(),
    "list_versions": lambda r: r.list_versions("iris"),
    "list_aliases": lambda r: r.list_aliases("iris"),
    "resolve_alias": lambda r: r.resolve_alias("iris", "production"),
    "promote": lambda r: r.promote("iris", "1"),
    "rollback": lambda r: r.rollback("iris"),
}


def _assert_typed(exc: BaseException) -> None:
    """A RegistryError, with no botocore exception leaking through type or chain."""
    assert type(exc) is RegistryError
    assert not isinstance(exc, BotoCoreError | ClientError)
    assert exc.__cause__ is None
    assert exc.__suppress_context__


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- a bucket that does not exist ------------------------------------------------------


@pytest.mark.parametrize("operation", OPERATIONS)
def test_missing_bucket_names_the_bucket_and_no_such_bucket(s3: S3Client, operation: str) -> None:
    bucket = f"absent-{uuid.uuid4().hex}"
    registry = Registry(S3Store(s3, bucket, "prefix"))

    with pytest.raises(RegistryError) as info:
        OPERATIONS[operation](registry)

    _assert_typed(info.value)
    assert bucket in str(info.value)
    assert "NoSuchBucket" in str(info.value)
    assert f"s3://{bucket}/prefix/models/" in str(info.value)


def test_publish_to_a_missing_bucket(s3: S3Client, iris_artifact: Artifact) -> None:
    bucket = f"absent-{uuid.uuid4().hex}"
    registry = Registry(S3Store(s3, bucket, "prefix"))

    with pytest.raises(RegistryError, match="NoSuchBucket") as info:
        registry.publish(iris_artifact, name="iris", version="1")

    _assert_typed(info.value)
    assert bucket in str(info.value)


# -- an endpoint that cannot be reached ------------------------------------------------


@pytest.fixture
def unreachable_registry() -> Registry:
    config = Config(
        retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=0.5, read_timeout=1
    )
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{_closed_port()}",
        config=config,
    )
    return Registry(S3Store(client, "unreachable-bucket", "prefix"))


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
@pytest.mark.parametrize("operation", OPERATIONS)
def test_unreachable_endpoint_is_a_registry_error(
    unreachable_registry: Registry, operation: str
) -> None:
    with pytest.raises(RegistryError) as info:
        OPERATIONS[operation](unreachable_registry)

    _assert_typed(info.value)
    message = str(info.value)
    assert "s3://unreachable-bucket/prefix/" in message
    assert "EndpointConnectionError" in message or "ConnectTimeoutError" in message


def test_publish_to_an_unreachable_endpoint(
    unreachable_registry: Registry, iris_artifact: Artifact
) -> None:
    with pytest.raises(RegistryError, match="unreachable-bucket") as info:
        unreachable_registry.publish(iris_artifact, name="iris", version="1")
    _assert_typed(info.value)


# -- access denied (stubbed responses, no network) -------------------------------------


@pytest.fixture
def stubbed() -> Iterator[tuple[Registry, Stubber]]:
    client = boto3.client("s3", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield Registry(S3Store(client, "locked-bucket", "team")), stubber
        stubber.assert_no_pending_responses()


def _deny(stubber: Stubber, method: str) -> None:
    stubber.add_client_error(
        method,
        service_error_code="AccessDenied",
        service_message="User is not authorized to perform this action",
        http_status_code=403,
    )


def test_access_denied_on_read(stubbed: tuple[Registry, Stubber]) -> None:
    registry, stubber = stubbed
    _deny(stubber, "get_object")

    with pytest.raises(RegistryError) as info:
        registry.read_manifest("iris", "1")

    _assert_typed(info.value)
    message = str(info.value)
    assert "AccessDenied" in message
    assert "not authorized" in message
    assert "GetObject" in message
    assert "s3://locked-bucket/team/models/iris/1/manifest.json" in message


def test_access_denied_on_list(stubbed: tuple[Registry, Stubber]) -> None:
    registry, stubber = stubbed
    _deny(stubber, "list_objects_v2")

    with pytest.raises(RegistryError, match="AccessDenied") as info:
        registry.list_versions("iris")

    _assert_typed(info.value)
    assert "ListObjectsV2" in str(info.value)
    assert "s3://locked-bucket/team/models/iris/" in str(info.value)


def test_access_denied_on_publish_write(
    stubbed: tuple[Registry, Stubber], iris_artifact: Artifact
) -> None:
    registry, stubber = stubbed
    stubber.add_client_error("get_object", service_error_code="NoSuchKey", http_status_code=404)
    _deny(stubber, "put_object")

    with pytest.raises(RegistryError, match="AccessDenied") as info:
        registry.publish(iris_artifact, name="iris", version="1")

    _assert_typed(info.value)
    assert "PutObject" in str(info.value)
    assert "s3://locked-bucket/team/models/iris/1/model.joblib" in str(info.value)


def test_a_failed_conditional_write_other_than_precondition_is_not_version_exists(
    stubbed: tuple[Registry, Stubber], iris_artifact: Artifact
) -> None:
    registry, stubber = stubbed
    stubber.add_client_error("get_object", service_error_code="NoSuchKey", http_status_code=404)
    stubber.add_response("put_object", {})  # model.joblib
    stubber.add_response("put_object", {})  # model.onnx
    _deny(stubber, "put_object")

    with pytest.raises(RegistryError, match="AccessDenied") as info:
        registry.publish(iris_artifact, name="iris", version="1")

    _assert_typed(info.value)
    assert "manifest.json" in str(info.value)


# -- open_registry ---------------------------------------------------------------------


@pytest.fixture
def offline_client() -> S3Client:
    return boto3.client("s3", region_name="us-east-1")


@pytest.mark.parametrize(
    ("location", "bucket", "prefix"),
    [
        ("s3://bucket/prefix", "bucket", "prefix/"),
        ("s3://bucket/prefix/", "bucket", "prefix/"),
        ("s3://bucket/a/b/c", "bucket", "a/b/c/"),
        ("s3://bucket", "bucket", ""),
        ("s3://bucket/", "bucket", ""),
    ],
)
def test_open_registry_parses_bucket_and_prefix(
    offline_client: S3Client, location: str, bucket: str, prefix: str
) -> None:
    registry = open_registry(location, s3_client=offline_client)

    store = registry.store
    assert isinstance(store, S3Store)
    assert store.bucket == bucket
    assert store.prefix == prefix
    assert store.client is offline_client
    assert registry.location == f"s3://{bucket}/{prefix}"
    assert store.describe("models/x") == f"s3://{bucket}/{prefix}models/x"


def test_open_registry_builds_its_own_client_when_none_is_given() -> None:
    registry = open_registry("s3://bucket/prefix")

    store = registry.store
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix) == ("bucket", "prefix/")
    assert store.client.meta.service_model.service_name == "s3"


def test_open_registry_on_moto_server_really_talks_to_the_bucket(
    moto_endpoint: str, iris_artifact: Artifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    bucket = f"opened-{uuid.uuid4().hex}"
    boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint).create_bucket(
        Bucket=bucket
    )

    registry = open_registry(f"s3://{bucket}/deep/prefix")
    registry.publish(iris_artifact, name="iris", version="1")

    assert registry.list_versions("iris") == ["1"]


@pytest.mark.parametrize("location", ["s3://", "s3:///prefix"])
def test_open_registry_without_a_bucket_is_refused(location: str) -> None:
    with pytest.raises(InvalidNameError, match="bucket"):
        open_registry(location)


@pytest.mark.parametrize("location", ["ftp://x", "https://bucket/prefix", "S3A://bucket/p"])
def test_open_registry_refuses_other_schemes(location: str) -> None:
    with pytest.raises(InvalidNameError, match="s3://"):
        open_registry(location)


def test_open_registry_on_a_directory(tmp_path: Path) -> None:
    for location in (tmp_path, str(tmp_path)):
        registry = open_registry(location)
        assert isinstance(registry.store, LocalStore)
        assert registry.store.root == tmp_path


# -- model_store.aws.s3_client ---------------------------------------------------------


def test_s3_client_honours_aws_endpoint_url_s3(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)

    client = s3_client()

    assert client.meta.endpoint_url == moto_endpoint
    bucket = f"endpoint-{uuid.uuid4().hex}"
    client.create_bucket(Bucket=bucket)
    assert bucket in [b["Name"] for b in client.list_buckets()["Buckets"]]


def test_s3_client_strips_whitespace_around_the_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "  http://127.0.0.1:4566 ")

    assert s3_client().meta.endpoint_url == "http://127.0.0.1:4566"


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
@pytest.mark.parametrize("value", ["", "   "])
def test_s3_client_treats_an_empty_endpoint_as_unset(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", value)

    client = s3_client()

    assert client.meta.endpoint_url == "https://s3.amazonaws.com"
    assert os.environ.get("AWS_ENDPOINT_URL_S3") is None


def test_s3_client_without_the_variable_uses_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)

    assert s3_client().meta.endpoint_url == "https://s3.amazonaws.com"
