"""The loading gate: bytes the manifest does not vouch for are never unpickled."""

from __future__ import annotations

import io
import logging
import uuid
from importlib.metadata import version as dist_version
from pathlib import Path
from types import SimpleNamespace

import joblib
import pytest

from model_store import (
    IncompatibleModelError,
    IntegrityError,
    ModelNotFoundError,
    VersionNotFoundError,
    load_model,
    open_registry,
)
from model_store.artifact import Artifact, dump_model, sha256_hex
from model_store.gate import DEFAULT_CACHE_DIR
from model_store.manifest import Manifest
from tests.support.doubles import CountingRegistry, Trap

RUNNING_SKLEARN = dist_version("scikit-learn")
MODEL_KEY = "models/{name}/{version}/model.joblib"


def _artifact_for(template: Manifest, data: bytes, **update: object) -> Artifact:
    # Only model.joblib: these bytes have no ONNX form.
    manifest = template.model_copy(
        update={
            "sha256": sha256_hex(data),
            "size_bytes": len(data),
            "onnx": None,
            "onnx_refused": "not a model",
            **update,
        }
    )
    return Artifact(data, manifest)


def _trap_artifact(template: Manifest, marker: Path) -> Artifact:
    # Uncompressed, so the marker path sits in the pickle stream as plain text.
    return _artifact_for(template, dump_model(Trap(marker), compress=0), compress=0)


def _with_sklearn(artifact: Artifact, sklearn_version: str) -> Artifact:
    runtime = artifact.manifest.runtime.model_copy(update={"sklearn": sklearn_version})
    manifest = artifact.manifest.model_copy(update={"runtime": runtime})
    return Artifact(artifact.model_bytes, manifest, artifact.onnx_bytes)


def _other_patch(version: str) -> str:
    major, minor, *rest = version.split(".")
    return f"{major}.{minor}.{'99' if rest == ['0'] else '0'}"


# -- tampering ------------------------------------------------------------------------------


def test_untampered_trap_runs_its_side_effect(tmp_path: Path, iris_artifact: Artifact) -> None:
    """The control: the trap really executes when its bytes are the vouched-for ones."""
    marker = tmp_path / "marker-A"
    registry = open_registry(tmp_path / "registry")
    registry.publish(_trap_artifact(iris_artifact.manifest, marker), name="trap", version="1")

    # os.mkdir returns None, which is no classifier: refused, but only after it ran.
    with pytest.raises(IntegrityError, match="does not hold a fitted classifier"):
        load_model(registry, "trap", "1", cache_dir=None)

    assert marker.is_dir()


def test_one_changed_byte_is_refused_before_unpickling(
    tmp_path: Path, iris_artifact: Artifact
) -> None:
    marker = tmp_path / "marker-A"
    tampered_marker = tmp_path / "marker-B"
    registry = open_registry(tmp_path / "registry")
    artifact = _trap_artifact(iris_artifact.manifest, marker)
    registry.publish(artifact, name="trap", version="1")

    # Change exactly one byte: the last character of the marker path, A -> B.
    original = artifact.model_bytes
    at = original.index(str(marker).encode()) + len(str(marker)) - 1
    tampered = original[:at] + b"B" + original[at + 1 :]
    assert len(tampered) == len(original)
    assert sum(a != b for a, b in zip(original, tampered, strict=True)) == 1
    registry.store.write(MODEL_KEY.format(name="trap", version="1"), tampered)
    assert registry.read_model_bytes("trap", "1") == tampered

    cache = tmp_path / "cache"
    with pytest.raises(IntegrityError) as excinfo:
        load_model(registry, "trap", "1", cache_dir=cache)

    message = str(excinfo.value)
    assert "sha256" in message
    assert artifact.manifest.sha256 in message
    assert sha256_hex(tampered) in message
    assert not marker.exists()
    assert not tampered_marker.exists()
    # Refused bytes are not cached either.
    assert not cache.exists() or not any(cache.iterdir())

    # The tampered bytes are a live payload: loading them outside the gate runs it.
    joblib.load(io.BytesIO(tampered))
    assert tampered_marker.is_dir()
    assert not marker.exists()


def test_truncated_model_is_refused_on_size(tmp_path: Path, iris_artifact: Artifact) -> None:
    marker = tmp_path / "marker"
    registry = open_registry(tmp_path / "registry")
    artifact = _trap_artifact(iris_artifact.manifest, marker)
    registry.publish(artifact, name="trap", version="1")
    truncated = artifact.model_bytes[: len(artifact.model_bytes) // 2]
    registry.store.write(MODEL_KEY.format(name="trap", version="1"), truncated)

    with pytest.raises(IntegrityError) as excinfo:
        load_model(registry, "trap", "1", cache_dir=None)

    message = str(excinfo.value)
    assert str(len(truncated)) in message
    assert str(artifact.manifest.size_bytes) in message
    assert not marker.exists()


def test_truncated_real_model_is_refused(tmp_path: Path, iris_artifact: Artifact) -> None:
    registry = open_registry(tmp_path)
    registry.publish(iris_artifact, name="iris", version="1")
    registry.store.write(MODEL_KEY.format(name="iris", version="1"), iris_artifact.model_bytes[:-1])
    with pytest.raises(IntegrityError, match="bytes"):
        load_model(registry, "iris", "1", cache_dir=None)


# -- scikit-learn compatibility -------------------------------------------------------------


@pytest.mark.parametrize("trained_with", ["0.24.2", "1.8.0"])
def test_other_sklearn_minor_is_refused(
    tmp_path: Path, iris_artifact: Artifact, trained_with: str
) -> None:
    assert trained_with.split(".")[:2] != RUNNING_SKLEARN.split(".")[:2]
    marker = tmp_path / "marker"
    registry = open_registry(tmp_path / "registry")
    registry.publish(_with_sklearn(iris_artifact, trained_with), name="iris", version="1")
    registry.publish(
        _with_sklearn(_trap_artifact(iris_artifact.manifest, marker), trained_with),
        name="trap",
        version="1",
    )

    with pytest.raises(IncompatibleModelError) as excinfo:
        load_model(registry, "iris", "1", cache_dir=None)
    assert trained_with in str(excinfo.value)
    assert RUNNING_SKLEARN in str(excinfo.value)

    with pytest.raises(IncompatibleModelError):
        load_model(registry, "trap", "1", cache_dir=None)
    assert not marker.exists()


def test_same_minor_other_patch_loads(
    tmp_path: Path, iris_artifact: Artifact, caplog: pytest.LogCaptureFixture
) -> None:
    other = _other_patch(RUNNING_SKLEARN)
    assert other != RUNNING_SKLEARN
    registry = open_registry(tmp_path)
    registry.publish(_with_sklearn(iris_artifact, other), name="iris", version="1")

    with caplog.at_level(logging.WARNING):
        loaded = load_model(registry, "iris", "1", cache_dir=None)

    assert loaded.manifest.runtime.sklearn == other
    assert [str(c) for c in loaded.estimator.classes_] == iris_artifact.manifest.target.classes
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_version_mismatch_can_be_allowed_with_a_warning(
    tmp_path: Path, iris_artifact: Artifact, caplog: pytest.LogCaptureFixture
) -> None:
    registry = open_registry(tmp_path)
    registry.publish(_with_sklearn(iris_artifact, "1.8.0"), name="iris", version="1")

    with caplog.at_level(logging.WARNING):
        loaded = load_model(registry, "iris", "1", cache_dir=None, allow_version_mismatch=True)

    assert loaded.manifest.runtime.sklearn == "1.8.0"
    assert hasattr(loaded.estimator, "predict")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "1.8.0" in warnings[0].getMessage()
    assert RUNNING_SKLEARN in warnings[0].getMessage()


# -- the /tmp cache -------------------------------------------------------------------------


def test_second_load_comes_from_cache(tmp_path: Path, iris_artifact: Artifact) -> None:
    registry = CountingRegistry(tmp_path / "registry")
    registry.publish(iris_artifact, name="iris", version="1")
    cache = tmp_path / "cache"

    first = load_model(registry, "iris", "1", cache_dir=cache)
    assert not first.from_cache
    assert registry.byte_reads == 1
    cached = cache / f"{iris_artifact.manifest.sha256}.joblib"
    assert cached.read_bytes() == iris_artifact.model_bytes

    second = load_model(registry, "iris", "1", cache_dir=cache)
    assert second.from_cache
    assert registry.byte_reads == 1
    assert second.manifest == first.manifest
    assert hasattr(second.estimator, "predict")


def test_corrupted_cache_file_is_ignored_and_replaced(
    tmp_path: Path, iris_artifact: Artifact
) -> None:
    registry = CountingRegistry(tmp_path / "registry")
    registry.publish(iris_artifact, name="iris", version="1")
    cache = tmp_path / "cache"
    cache.mkdir()
    cached = cache / f"{iris_artifact.manifest.sha256}.joblib"
    good = iris_artifact.model_bytes
    cached.write_bytes(good[:100] + bytes([good[100] ^ 0xFF]) + good[101:])

    loaded = load_model(registry, "iris", "1", cache_dir=cache)

    assert not loaded.from_cache
    assert registry.byte_reads == 1
    assert cached.read_bytes() == good
    assert load_model(registry, "iris", "1", cache_dir=cache).from_cache
    assert registry.byte_reads == 1


def test_corrupted_cached_trap_is_never_unpickled(tmp_path: Path, iris_artifact: Artifact) -> None:
    """A poisoned /tmp file under the right name is not trusted."""
    registry = CountingRegistry(tmp_path / "registry")
    registry.publish(iris_artifact, name="iris", version="1")
    cache = tmp_path / "cache"
    cache.mkdir()
    marker = tmp_path / "marker"
    (cache / f"{iris_artifact.manifest.sha256}.joblib").write_bytes(
        dump_model(Trap(marker), compress=0)
    )

    loaded = load_model(registry, "iris", "1", cache_dir=cache)

    assert not marker.exists()
    assert not loaded.from_cache
    assert registry.byte_reads == 1


def test_no_cache_dir_never_writes(tmp_path: Path, iris_artifact: Artifact) -> None:
    # Unique bytes, so no other test can have put this sha256 in the default cache.
    data = dump_model(SimpleNamespace(classes_=["a", "b"], nonce=uuid.uuid4().hex), compress=3)
    artifact = _artifact_for(iris_artifact.manifest, data)
    registry = CountingRegistry(tmp_path / "registry")
    registry.publish(artifact, name="blob", version="1")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    first = load_model(registry, "blob", "1", cache_dir=None)
    second = load_model(registry, "blob", "1", cache_dir=None)

    assert first.estimator == second.estimator == joblib.load(io.BytesIO(data))
    assert not first.from_cache
    assert not second.from_cache
    assert registry.byte_reads == 2
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert not (DEFAULT_CACHE_DIR / f"{artifact.manifest.sha256}.joblib").exists()


# -- not found ------------------------------------------------------------------------------


def test_missing_model(tmp_path: Path, iris_artifact: Artifact) -> None:
    registry = open_registry(tmp_path)
    with pytest.raises(ModelNotFoundError, match="nope"):
        load_model(registry, "nope", "1", cache_dir=None)
    registry.publish(iris_artifact, name="iris", version="1")
    with pytest.raises(ModelNotFoundError, match="nope"):
        load_model(registry, "nope", "1", cache_dir=None)


def test_missing_version(tmp_path: Path, iris_artifact: Artifact) -> None:
    registry = open_registry(tmp_path)
    registry.publish(iris_artifact, name="iris", version="1")
    with pytest.raises(VersionNotFoundError, match="'2'"):
        load_model(registry, "iris", "2", cache_dir=None)
    assert load_model(registry, "iris", "1", cache_dir=None).version == "1"
