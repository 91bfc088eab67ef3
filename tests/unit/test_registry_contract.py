"""One behavioural contract for the registry, run against every backend.

The same tests run over a local directory, S3 over real HTTP (the session's moto server)
through botocore, and the same server through the functions' own SigV4 client
(``S3HttpStore``), so the backends cannot drift apart.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest

from model_store.artifact import MANIFEST_FILE, MODEL_FILE, Artifact
from model_store.exceptions import (
    AliasNotFoundError,
    IntegrityError,
    InvalidNameError,
    ManifestError,
    ModelNotFoundError,
    NothingToRollBackError,
    VersionExistsError,
    VersionNotFoundError,
)
from model_store.registry import LocalStore, ObjectStore, Registry, S3Store
from model_store.registry.s3_http import S3HttpStore
from model_store.registry.stores import KeyExists, KeyNotFound

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREFIX = "team/registry"
BACKENDS = ["local", "s3-server", "s3-http"]


def _fresh_bucket(client: S3Client) -> str:
    bucket = f"registry-{uuid.uuid4().hex}"
    client.create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(params=BACKENDS)
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    backend: str = request.param
    if backend == "local":
        yield Registry(LocalStore(tmp_path / "registry"))
    else:
        endpoint: str = request.getfixturevalue("moto_endpoint")
        client = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint)
        if backend == "s3-server":
            yield Registry(S3Store(client, _fresh_bucket(client), PREFIX))
        else:
            environ = {**os.environ, "AWS_ENDPOINT_URL_S3": endpoint}
            yield Registry(S3HttpStore(_fresh_bucket(client), PREFIX, environ=environ))


def _tampered(artifact: Artifact) -> Artifact:
    """Same length, one byte flipped: only the sha256 can tell."""
    data = bytearray(artifact.model_bytes)
    data[len(data) // 2] ^= 0xFF
    return Artifact(bytes(data), artifact.manifest)


# -- publish and read ------------------------------------------------------------------


def test_publish_then_read_round_trips(registry: Registry, iris_artifact: Artifact) -> None:
    returned = registry.publish(iris_artifact, name="iris", version="1")

    assert returned.name == "iris"
    assert returned.version == "1"
    manifest = registry.read_manifest("iris", "1")
    assert manifest == returned
    assert manifest.sha256 == iris_artifact.manifest.sha256
    assert manifest.size_bytes == len(iris_artifact.model_bytes)
    assert manifest.feature_names == iris_artifact.manifest.feature_names
    assert registry.read_model_bytes("iris", "1") == iris_artifact.model_bytes


def test_publish_sets_name_and_version_whatever_the_artifact_says(
    registry: Registry, iris_artifact: Artifact
) -> None:
    assert iris_artifact.manifest.name == "iris"
    registry.publish(iris_artifact, name="flowers", version="2024.01.02-rc1")

    manifest = registry.read_manifest("flowers", "2024.01.02-rc1")
    assert (manifest.name, manifest.version) == ("flowers", "2024.01.02-rc1")
    assert registry.list_models() == ["flowers"]


def test_publishing_an_existing_version_is_refused_and_keeps_the_original(
    registry: Registry, iris_artifact: Artifact, iris_artifact_2: Artifact
) -> None:
    assert iris_artifact.model_bytes != iris_artifact_2.model_bytes
    registry.publish(iris_artifact, name="iris", version="1")

    with pytest.raises(VersionExistsError, match="already exists"):
        registry.publish(iris_artifact_2, name="iris", version="1")

    assert registry.read_model_bytes("iris", "1") == iris_artifact.model_bytes
    assert registry.read_manifest("iris", "1").sha256 == iris_artifact.manifest.sha256
    assert registry.list_versions("iris") == ["1"]


class _ManifestCheckMisses:
    """A store view whose existence check misses the manifest: two publishers racing."""

    def __init__(self, store: ObjectStore) -> None:
        self.inner = store

    def describe(self, key: str = "") -> str:
        return self.inner.describe(key)

    def deadline(self, seconds: float, *, attempts: int) -> AbstractContextManager[None]:
        return self.inner.deadline(seconds, attempts=attempts)

    def read(self, key: str) -> bytes:
        if key.endswith("/" + MANIFEST_FILE):
            raise KeyNotFound(key)
        return self.inner.read(key)

    def write(self, key: str, data: bytes, *, exclusive: bool = False) -> None:
        self.inner.write(key, data, exclusive=exclusive)

    def list_keys(self, prefix: str) -> Iterator[str]:
        return self.inner.list_keys(prefix)


def test_losing_a_publish_race_leaves_the_winners_bytes_untouched(
    registry: Registry, iris_artifact: Artifact, iris_artifact_2: Artifact
) -> None:
    """The publisher whose exclusive manifest write loses must not have touched the version."""
    registry.publish(iris_artifact, name="iris", version="1")
    racer = Registry(_ManifestCheckMisses(registry.store))

    with pytest.raises(VersionExistsError):
        racer.publish(iris_artifact_2, name="iris", version="1")

    manifest = registry.read_manifest("iris", "1")
    assert manifest.sha256 == iris_artifact.manifest.sha256
    stored = registry.read_model_bytes("iris", "1")
    onnx = registry.read_onnx_bytes("iris", "1")
    Artifact(stored, manifest, onnx).verify(source="iris@1 after the lost race")
    assert stored == iris_artifact.model_bytes
    assert onnx == iris_artifact.onnx_bytes


def test_exclusive_write_never_overwrites(registry: Registry) -> None:
    registry.store.write("scratch/key", b"first", exclusive=True)

    with pytest.raises(KeyExists):
        registry.store.write("scratch/key", b"second", exclusive=True)

    assert registry.store.read("scratch/key") == b"first"
    registry.store.write("scratch/key", b"third")
    assert registry.store.read("scratch/key") == b"third"


def test_reading_a_missing_key_is_key_not_found(registry: Registry) -> None:
    with pytest.raises(KeyNotFound):
        registry.store.read("models/nothing/here.json")


def test_reading_missing_versions_and_models(registry: Registry, iris_artifact: Artifact) -> None:
    with pytest.raises(ModelNotFoundError, match="iris"):
        registry.read_manifest("iris", "1")
    with pytest.raises(ModelNotFoundError, match="iris"):
        registry.read_model_bytes("iris", "1")

    registry.publish(iris_artifact, name="iris", version="1")

    with pytest.raises(VersionNotFoundError, match=r"iris has no version '2'"):
        registry.read_manifest("iris", "2")
    with pytest.raises(VersionNotFoundError, match=r"iris has no version '2'"):
        registry.read_model_bytes("iris", "2")


# -- listing ---------------------------------------------------------------------------


def test_empty_registry_lists_nothing(registry: Registry) -> None:
    assert registry.list_models() == []
    assert registry.list_versions("iris") == []
    assert registry.list_aliases("iris") == {}


def test_list_models_and_versions_in_natural_order(
    registry: Registry, iris_artifact: Artifact
) -> None:
    for version in ("10", "2", "1"):
        registry.publish(iris_artifact, name="iris", version=version)
    registry.publish(iris_artifact, name="penguins", version="1")

    assert registry.list_models() == ["iris", "penguins"]
    assert registry.list_versions("iris") == ["1", "2", "10"]
    assert registry.list_versions("penguins") == ["1"]
    assert registry.list_versions("absent") == []


def test_a_version_without_a_manifest_is_not_listed(
    registry: Registry, iris_artifact: Artifact
) -> None:
    registry.publish(iris_artifact, name="iris", version="1")
    # An interrupted publish: the model bytes landed, the manifest never did.
    registry.store.write(f"models/iris/3/{MODEL_FILE}", iris_artifact.model_bytes)
    registry.store.write(f"models/ghost/1/{MODEL_FILE}", iris_artifact.model_bytes)

    assert registry.list_versions("iris") == ["1"]
    assert registry.list_models() == ["iris"]
    with pytest.raises(VersionNotFoundError):
        registry.read_manifest("iris", "3")
    with pytest.raises(VersionNotFoundError):
        registry.promote("iris", "3")


def test_an_interrupted_publish_can_be_completed(
    registry: Registry, iris_artifact: Artifact
) -> None:
    # Stores write whole objects, so an interrupted publish leaves its complete bytes.
    registry.store.write(f"models/iris/1/{MODEL_FILE}", iris_artifact.model_bytes)

    registry.publish(iris_artifact, name="iris", version="1")

    assert registry.read_model_bytes("iris", "1") == iris_artifact.model_bytes
    assert registry.list_versions("iris") == ["1"]


def test_other_bytes_left_under_a_version_claim_it(
    registry: Registry, iris_artifact: Artifact
) -> None:
    """Another publisher's model.joblib (racing or interrupted) is never replaced."""
    registry.store.write(f"models/iris/1/{MODEL_FILE}", b"another publisher's model")

    with pytest.raises(VersionExistsError, match=r"another model\.joblib is already stored"):
        registry.publish(iris_artifact, name="iris", version="1")

    assert registry.store.read(f"models/iris/1/{MODEL_FILE}") == b"another publisher's model"
    assert registry.list_versions("iris") == []


# -- aliases ---------------------------------------------------------------------------


def test_resolving_a_missing_alias(registry: Registry, iris_artifact: Artifact) -> None:
    with pytest.raises(AliasNotFoundError, match="no model named 'iris'"):
        registry.resolve_alias("iris", "production")

    registry.publish(iris_artifact, name="iris", version="1")

    with pytest.raises(AliasNotFoundError, match=r"iris has no alias 'production'") as info:
        registry.resolve_alias("iris", "production")
    assert "no model named" not in str(info.value)
    with pytest.raises(AliasNotFoundError):
        registry.alias_record("iris", "staging")
    with pytest.raises(AliasNotFoundError):
        registry.rollback("iris")


def test_promoting_a_missing_version_or_model(registry: Registry, iris_artifact: Artifact) -> None:
    with pytest.raises(ModelNotFoundError, match="no model named 'iris'"):
        registry.promote("iris", "1")

    registry.publish(iris_artifact, name="iris", version="1")

    with pytest.raises(VersionNotFoundError, match=r"iris has no version '7'"):
        registry.promote("iris", "7")
    # A failed promote must not create the alias.
    with pytest.raises(AliasNotFoundError):
        registry.resolve_alias("iris", "production")
    assert registry.list_aliases("iris") == {}


def test_promote_promote_rollback_rollback(
    registry: Registry, iris_artifact: Artifact, iris_artifact_2: Artifact
) -> None:
    registry.publish(iris_artifact, name="iris", version="1")
    registry.publish(iris_artifact_2, name="iris", version="2")

    record = registry.promote("iris", "1")
    assert record.version == "1"
    assert registry.resolve_alias("iris", "production") == "1"

    record = registry.promote("iris", "2")
    assert record.version == "2"
    assert registry.resolve_alias("iris", "production") == "2"

    record = registry.rollback("iris")
    assert record.version == "1"
    assert registry.resolve_alias("iris", "production") == "1"

    with pytest.raises(NothingToRollBackError, match="iris@production") as info:
        registry.rollback("iris")
    assert "1" in str(info.value)
    assert registry.resolve_alias("iris", "production") == "1"


def test_rollback_walks_back_through_several_promotions(
    registry: Registry, iris_artifact: Artifact
) -> None:
    for version in ("1", "2", "3"):
        registry.publish(iris_artifact, name="iris", version=version)
        registry.promote("iris", version)

    assert registry.rollback("iris").version == "2"
    assert registry.rollback("iris").version == "1"
    with pytest.raises(NothingToRollBackError):
        registry.rollback("iris")


def test_alias_history_records_every_event_in_order(
    registry: Registry, iris_artifact: Artifact, iris_artifact_2: Artifact
) -> None:
    registry.publish(iris_artifact, name="iris", version="1")
    registry.publish(iris_artifact_2, name="iris", version="2")
    registry.promote("iris", "1")
    registry.promote("iris", "2")
    registry.rollback("iris")
    with pytest.raises(NothingToRollBackError):
        registry.rollback("iris")  # a refused rollback is not an event
    registry.promote("iris", "2")

    history = registry.alias_record("iris", "production").history

    assert [(event.action, event.version) for event in history] == [
        ("promote", "1"),
        ("promote", "2"),
        ("rollback", "1"),
        ("promote", "2"),
    ]
    times = [event.at for event in history]
    assert times == sorted(times)
    assert all(at.tzinfo is not None for at in times)
    assert registry.alias_record("iris", "production").updated_at == times[-1]
    assert registry.resolve_alias("iris", "production") == "2"


def test_list_aliases_and_independent_aliases(
    registry: Registry, iris_artifact: Artifact, iris_artifact_2: Artifact
) -> None:
    registry.publish(iris_artifact, name="iris", version="1")
    registry.publish(iris_artifact_2, name="iris", version="2")
    registry.publish(iris_artifact, name="other", version="1")

    registry.promote("iris", "1")
    registry.promote("iris", "2", alias="staging")
    registry.promote("other", "1", alias="canary")

    assert registry.list_aliases("iris") == {"production": "1", "staging": "2"}
    assert registry.list_aliases("other") == {"canary": "1"}

    registry.promote("iris", "2")
    registry.rollback("iris", alias="production")
    assert registry.list_aliases("iris") == {"production": "1", "staging": "2"}
    with pytest.raises(NothingToRollBackError):
        registry.rollback("iris", alias="staging")
    # Aliases do not show up as models or versions.
    assert registry.list_models() == ["iris", "other"]
    assert registry.list_versions("iris") == ["1", "2"]


# -- names -----------------------------------------------------------------------------

# "iris\n" passed a regex anchored with "$" alone (it matches before a final newline).
BAD_SEGMENTS = ["../x", "a/b", "", "aliases", "..", ".hidden", "a b", "x" * 200, "iris\n"]


@pytest.mark.parametrize("bad", BAD_SEGMENTS)
def test_invalid_model_names_are_refused(
    registry: Registry, iris_artifact: Artifact, bad: str
) -> None:
    with pytest.raises(InvalidNameError, match="invalid model name"):
        registry.publish(iris_artifact, name=bad, version="1")
    with pytest.raises(InvalidNameError):
        registry.read_manifest(bad, "1")
    with pytest.raises(InvalidNameError):
        registry.read_model_bytes(bad, "1")
    with pytest.raises(InvalidNameError):
        registry.list_versions(bad)
    with pytest.raises(InvalidNameError):
        registry.list_aliases(bad)
    with pytest.raises(InvalidNameError):
        registry.promote(bad, "1")
    with pytest.raises(InvalidNameError):
        registry.resolve_alias(bad, "production")
    with pytest.raises(InvalidNameError):
        registry.rollback(bad)
    assert registry.list_models() == []


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
@pytest.mark.parametrize("bad", BAD_SEGMENTS)
def test_invalid_versions_are_refused(
    registry: Registry, iris_artifact: Artifact, bad: str
) -> None:
    with pytest.raises(InvalidNameError, match="invalid version"):
        registry.publish(iris_artifact, name="iris", version=bad)
    registry.publish(iris_artifact, name="iris", version="1")
    with pytest.raises(InvalidNameError, match="invalid version"):
        registry.read_manifest("iris", bad)
    with pytest.raises(InvalidNameError, match="invalid version"):
        registry.promote("iris", bad)
    assert registry.list_versions("iris") == ["1"]


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "Production", "1st", "a.b", "production\n"])
def test_invalid_aliases_are_refused(registry: Registry, iris_artifact: Artifact, bad: str) -> None:
    registry.publish(iris_artifact, name="iris", version="1")
    with pytest.raises(InvalidNameError, match="invalid alias"):
        registry.promote("iris", "1", alias=bad)
    with pytest.raises(InvalidNameError, match="invalid alias"):
        registry.resolve_alias("iris", bad)
    with pytest.raises(InvalidNameError, match="invalid alias"):
        registry.rollback("iris", alias=bad)
    assert registry.list_aliases("iris") == {}


# -- damaged manifests and artifacts ---------------------------------------------------


def test_an_unreadable_manifest_names_its_location(
    registry: Registry, iris_artifact: Artifact
) -> None:
    registry.publish(iris_artifact, name="iris", version="1")
    key = f"models/iris/1/{MANIFEST_FILE}"
    registry.store.write(key, b"\x00\xff not json {")

    with pytest.raises(ManifestError) as info:
        registry.read_manifest("iris", "1")

    location = registry.store.describe(key)
    assert location in str(info.value)
    assert "JSON" in str(info.value)
    if isinstance(registry.store, S3Store):
        assert location.startswith(f"s3://{registry.store.bucket}/{PREFIX}/models/iris/1/")
    with pytest.raises(ManifestError):
        registry.promote("iris", "1")


def test_a_manifest_of_an_unknown_schema_version_is_refused(
    registry: Registry, iris_artifact: Artifact
) -> None:
    registry.publish(iris_artifact, name="iris", version="1")
    key = f"models/iris/1/{MANIFEST_FILE}"
    raw = json.loads(registry.store.read(key))
    assert raw["schema_version"] == 2
    raw["schema_version"] = 99
    registry.store.write(key, json.dumps(raw).encode())

    with pytest.raises(ManifestError, match=r"schema_version 99") as info:
        registry.read_manifest("iris", "1")
    assert registry.store.describe(key) in str(info.value)


def test_a_schema_1_manifest_reads_as_a_model_without_an_onnx_form(
    registry: Registry, iris_artifact: Artifact
) -> None:
    """Models published before ONNX forms existed keep loading (with scikit-learn)."""
    registry.publish(iris_artifact, name="iris", version="1")
    key = f"models/iris/1/{MANIFEST_FILE}"
    raw = json.loads(registry.store.read(key))
    raw["schema_version"] = 1
    del raw["onnx"], raw["onnx_refused"]
    registry.store.write(key, json.dumps(raw).encode())

    manifest = registry.read_manifest("iris", "1")

    assert manifest.schema_version == 1
    assert manifest.onnx is None
    assert manifest.onnx_missing_reason == "it was published before ONNX forms existed"
    assert manifest.sha256 == iris_artifact.manifest.sha256


def test_a_manifest_for_another_version_is_refused(
    registry: Registry, iris_artifact: Artifact
) -> None:
    registry.publish(iris_artifact, name="iris", version="1")
    registry.publish(iris_artifact, name="iris", version="2")
    # Copy version 1's manifest over version 2's: it vouches for the wrong version.
    registry.store.write(
        f"models/iris/2/{MANIFEST_FILE}", registry.store.read(f"models/iris/1/{MANIFEST_FILE}")
    )

    with pytest.raises(ManifestError, match="iris@1"):
        registry.read_manifest("iris", "2")


def test_a_damaged_alias_document_is_a_manifest_error(
    registry: Registry, iris_artifact: Artifact
) -> None:
    registry.publish(iris_artifact, name="iris", version="1")
    key = "models/iris/aliases/production.json"
    registry.store.write(key, b"{not an alias")

    with pytest.raises(ManifestError) as info:
        registry.resolve_alias("iris", "production")
    assert registry.store.describe(key) in str(info.value)


@pytest.mark.parametrize("damage", ["truncated", "tampered"])
def test_publishing_bytes_that_do_not_match_the_manifest_is_refused(
    registry: Registry, iris_artifact: Artifact, damage: str
) -> None:
    if damage == "truncated":
        bad = Artifact(iris_artifact.model_bytes[:-10], iris_artifact.manifest)
        pattern = "bytes, manifest says"
    else:
        bad = _tampered(iris_artifact)
        pattern = "sha256 [0-9a-f]{64}, manifest says"

    with pytest.raises(IntegrityError, match=pattern):
        registry.publish(bad, name="iris", version="1")

    assert registry.list_versions("iris") == []
    assert list(registry.store.list_keys("models/")) == []
