"""The loading gate for the onnx runtime: model.onnx checked before a session, nothing unpickled."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

from model_store import (
    IncompatibleModelError,
    IntegrityError,
    MissingFormError,
    load_model,
    open_registry,
)
from model_store.artifact import Artifact, dump_model, sha256_hex
from model_store.gate import load_artifact_dir
from model_store.manifest import OnnxForm
from model_store.training import load_iris_dataset
from tests.support.doubles import CountingRegistry, Trap

RUNNING = onnxruntime.__version__
ONNX_KEY = "models/{name}/{version}/model.onnx"


def _with_trapped_joblib(artifact: Artifact, marker: Path) -> Artifact:
    """The real ONNX form, beside a model.joblib whose unpickling would run code."""
    data = dump_model(Trap(marker), compress=0)
    manifest = artifact.manifest.model_copy(
        update={"sha256": sha256_hex(data), "size_bytes": len(data)}
    )
    return Artifact(data, manifest, artifact.onnx_bytes)


def _with_form(artifact: Artifact, onnx_bytes: bytes, **update: object) -> Artifact:
    assert artifact.manifest.onnx is not None
    form = artifact.manifest.onnx.model_copy(
        update={"sha256": sha256_hex(onnx_bytes), "size_bytes": len(onnx_bytes), **update}
    )
    return Artifact(
        artifact.model_bytes, artifact.manifest.model_copy(update={"onnx": form}), onnx_bytes
    )


def _without_form(artifact: Artifact, refused: str | None) -> Artifact:
    manifest = artifact.manifest.model_copy(update={"onnx": None, "onnx_refused": refused})
    return Artifact(artifact.model_bytes, manifest)


def test_the_onnx_runtime_never_unpickles(tmp_path: Path, iris_artifact: Artifact) -> None:
    marker = tmp_path / "marker"
    registry = CountingRegistry(tmp_path / "registry")
    registry.publish(_with_trapped_joblib(iris_artifact, marker), name="iris", version="1")

    loaded = load_model(registry, "iris", "1", runtime="onnx", cache_dir=None)

    assert registry.files == ["model.onnx"]  # model.joblib is not even read
    assert not marker.exists()
    assert loaded.runtime.name == "onnx"
    iris = load_iris_dataset()
    predictions = loaded.predict(iris.features[[0, 50, 100]])
    assert predictions.labels == ["setosa", "versicolor", "virginica"]
    with pytest.raises(AttributeError, match="onnx runtime holds no estimator"):
        _ = loaded.estimator
    # The same registry entry through the sklearn runtime would run the trap.
    with pytest.raises(IntegrityError):
        load_model(registry, "iris", "1", runtime="sklearn", cache_dir=None)
    assert marker.is_dir()


def test_a_tampered_model_onnx_is_refused_before_a_session(
    tmp_path: Path, iris_artifact: Artifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = open_registry(tmp_path / "registry")
    registry.publish(iris_artifact, name="iris", version="1")
    original = iris_artifact.onnx_bytes
    assert original is not None
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0x01
    registry.store.write(ONNX_KEY.format(name="iris", version="1"), bytes(tampered))
    sessions: list[object] = []
    real = onnxruntime.InferenceSession

    def recording_session(*args: object, **kwargs: object) -> object:
        sessions.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", recording_session)

    with pytest.raises(IntegrityError) as info:
        load_model(registry, "iris", "1", runtime="onnx", cache_dir=tmp_path / "cache")

    assert sha256_hex(bytes(tampered)) in str(info.value)
    assert "model.onnx" in str(info.value)
    assert sessions == []
    assert not (tmp_path / "cache").exists()


def test_a_model_without_an_onnx_form_names_the_reason(
    tmp_path: Path, iris_artifact: Artifact
) -> None:
    registry = open_registry(tmp_path / "registry")
    registry.publish(
        _without_form(iris_artifact, "skl2onnx cannot convert it"), name="iris", version="1"
    )
    registry.publish(_without_form(iris_artifact, None), name="iris", version="2")

    with pytest.raises(MissingFormError) as refused:
        load_model(registry, "iris", "1", runtime="onnx", cache_dir=None)
    with pytest.raises(MissingFormError) as old:
        load_model(registry, "iris", "2", runtime="onnx", cache_dir=None)

    assert "iris@1 has no ONNX form (skl2onnx cannot convert it)" in str(refused.value)
    assert "it was published before ONNX forms existed" in str(old.value)
    assert "model-store add-onnx iris@2" in str(old.value)
    # scikit-learn still serves both.
    assert load_model(registry, "iris", "1", runtime="sklearn", cache_dir=None).version == "1"


def test_onnx_bytes_are_cached_by_sha256(tmp_path: Path, iris_artifact: Artifact) -> None:
    registry = CountingRegistry(tmp_path / "registry")
    registry.publish(iris_artifact, name="iris", version="1")
    cache = tmp_path / "cache"
    assert iris_artifact.manifest.onnx is not None

    first = load_model(registry, "iris", "1", runtime="onnx", cache_dir=cache)
    second = load_model(registry, "iris", "1", runtime="onnx", cache_dir=cache)

    assert (first.from_cache, second.from_cache) == (False, True)
    assert registry.files == ["model.onnx"]
    cached = cache / f"{iris_artifact.manifest.onnx.sha256}.onnx"
    assert cached.read_bytes() == iris_artifact.onnx_bytes


# -- ONNX Runtime releases --------------------------------------------------------------------


def _proven_with(artifact: Artifact, release: str) -> Artifact:
    assert artifact.manifest.onnx is not None
    assert artifact.onnx_bytes is not None
    return _with_form(artifact, artifact.onnx_bytes, onnxruntime=release)


def test_another_release_of_the_same_major_serves_with_a_warning(
    tmp_path: Path, iris_artifact: Artifact, caplog: pytest.LogCaptureFixture
) -> None:
    major = RUNNING.split(".")[0]
    other = f"{major}.0.0"
    assert other != RUNNING
    registry = open_registry(tmp_path / "registry")
    registry.publish(_proven_with(iris_artifact, other), name="iris", version="1")

    with caplog.at_level(logging.WARNING, logger="model_store"):
        loaded = load_model(registry, "iris", "1", runtime="onnx", cache_dir=None)

    assert loaded.runtime.name == "onnx"
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"proven with ONNX Runtime {other}, serving with {RUNNING}" in warning


def test_another_major_release_is_refused_unless_allowed(
    tmp_path: Path, iris_artifact: Artifact
) -> None:
    other = f"{int(RUNNING.split('.')[0]) + 1}.0.0"
    registry = open_registry(tmp_path / "registry")
    registry.publish(_proven_with(iris_artifact, other), name="iris", version="1")

    with pytest.raises(IncompatibleModelError, match=f"proven with ONNX Runtime {other}"):
        load_model(registry, "iris", "1", runtime="onnx", cache_dir=None)

    allowed = load_model(
        registry, "iris", "1", runtime="onnx", cache_dir=None, allow_version_mismatch=True
    )
    assert allowed.runtime.name == "onnx"


def test_a_graph_this_release_cannot_open_is_incompatible_not_tampered(
    tmp_path: Path, iris_artifact: Artifact
) -> None:
    assert iris_artifact.onnx_bytes is not None
    graph = onnx.load_from_string(iris_artifact.onnx_bytes)
    for opset in graph.opset_import:
        if opset.domain == "":
            opset.version = 99  # an opset no release implements
    artifact = _with_form(iris_artifact, graph.SerializeToString())
    registry = open_registry(tmp_path / "registry")
    registry.publish(artifact, name="iris", version="1")

    with pytest.raises(IncompatibleModelError, match=r"cannot open model\.onnx"):
        load_model(registry, "iris", "1", runtime="onnx", cache_dir=None)


def test_outputs_the_manifest_does_not_name_are_refused(
    tmp_path: Path, iris_artifact: Artifact
) -> None:
    assert iris_artifact.onnx_bytes is not None
    artifact = _with_form(iris_artifact, iris_artifact.onnx_bytes, probabilities_output="scores")
    registry = open_registry(tmp_path / "registry")
    registry.publish(artifact, name="iris", version="1")

    with pytest.raises(IntegrityError, match="does not have the input and outputs"):
        load_model(registry, "iris", "1", runtime="onnx", cache_dir=None)


# -- artifact directories ----------------------------------------------------------------------


def test_an_artifact_directory_loads_with_either_runtime(
    tmp_path: Path, iris_artifact: Artifact
) -> None:
    directory = iris_artifact.write(tmp_path / "artifact")
    rows = load_iris_dataset().features
    onnx_model = load_artifact_dir(directory, runtime="onnx")
    sklearn_model = load_artifact_dir(directory, runtime="sklearn")
    a, b = onnx_model.predict(rows), sklearn_model.predict(rows)
    assert a.labels == b.labels
    assert a.classes == b.classes
    assert a.probabilities is not None
    assert b.probabilities is not None
    assert np.abs(a.probabilities - b.probabilities).max() <= 1e-5


def test_an_artifact_directory_missing_its_model_onnx_is_refused(
    tmp_path: Path, iris_artifact: Artifact
) -> None:
    directory = iris_artifact.write(tmp_path / "artifact")
    (directory / "model.onnx").unlink()
    with pytest.raises(IntegrityError, match=r"names a model\.onnx that is missing"):
        load_artifact_dir(directory, runtime="onnx")


def test_the_form_round_trips_through_the_manifest(iris_artifact: Artifact) -> None:
    form = iris_artifact.manifest.onnx
    assert isinstance(form, OnnxForm)
    assert form.onnxruntime == RUNNING
    assert form.converter.keys() == {"skl2onnx", "onnx"}
    assert form.proof.label_agreement == 1.0
