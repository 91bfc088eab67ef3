"""The loading gate: manifest, compatibility, bytes, sha256, and only then the runtime.

For ``sklearn``, unpickling runs code, so nothing reaches ``joblib.load`` unless the
manifest vouches for exactly those bytes and the running scikit-learn can read them. For
``onnx``, model.onnx is checked the same way before a session is created from it, and
nothing is ever unpickled: model.joblib is not even read.

ONNX Runtime releases: the proof vouches for the release it ran on. A graph is data whose
operators' meaning is fixed by its opset, so another release of the same major version
serves it (with a warning in the log: the proof's figures were measured elsewhere); a
different major version is refused like a scikit-learn mismatch, unless explicitly allowed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_store.artifact import MODEL_FILE, ONNX_FILE, Artifact, sha256_hex, verify_bytes
from model_store.exceptions import IncompatibleModelError, MissingFormError, UnscorableError
from model_store.manifest import Manifest
from model_store.registry import Registry
from model_store.runtimes import ModelRuntime, RuntimeName
from model_store.scoring import Predictions, as_matrix, explain_unscorable
from model_store.signing import Verifier

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path(tempfile.gettempdir()) / "model-store-cache"


@dataclass(frozen=True)
class LoadedModel:
    runtime: ModelRuntime
    manifest: Manifest
    load_seconds: float
    from_cache: bool

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version or ""

    @property
    def estimator(self) -> Any:
        """The unpickled scikit-learn estimator (the sklearn runtime only)."""
        estimator = getattr(self.runtime, "estimator", None)
        if estimator is None:
            raise AttributeError(f"the {self.runtime.name} runtime holds no estimator")
        return estimator

    def predict(self, rows: Any) -> Predictions:
        """Score records, a DataFrame or a matrix (feature order) in one vectorised call.

        Raises InputError for rows that are not the model's features, and UnscorableError
        (an InputError) when the model cannot score some of them.
        """
        predictions, unscorable = self.score(rows)
        if unscorable:
            raise UnscorableError(unscorable)
        return predictions

    def score(self, rows: Any) -> tuple[Predictions, dict[int, str]]:
        """Predictions for every row, and the rows the model could not score with why.

        Those rows' labels and probabilities mean nothing: a caller drops them.
        """
        matrix = as_matrix(rows, self.manifest.feature_names)
        predictions = self.runtime.predict(matrix)
        features = self.manifest.features
        unscorable = {
            i: explain_unscorable(features, matrix[i]) for i in predictions.nonfinite_rows()
        }
        return predictions, unscorable


def load_model(
    registry: Registry,
    name: str,
    version: str,
    *,
    runtime: RuntimeName = "sklearn",
    cache_dir: Path | None = DEFAULT_CACHE_DIR,
    allow_version_mismatch: bool = False,
    verifier: Verifier | None = None,
) -> LoadedModel:
    """Load NAME@VERSION through the gate; raises a typed ModelStoreError on refusal.

    With a VERIFIER the manifest must carry its key's signature before anything it names
    is read (model_store.signing)."""
    started = time.perf_counter()
    manifest = registry.read_manifest(name, version, verifier=verifier)
    source = f"{name}@{version}"
    remedy = f"serve it with the sklearn runtime, or add one with `model-store add-onnx {source}`"
    file, sha256, size = _served_file(manifest, runtime, source, remedy, allow_version_mismatch)
    data = _cached_bytes(cache_dir, sha256, file)
    from_cache = data is not None
    if data is None:
        data = registry.read_file(name, version, file)
    verify_bytes(data, sha256=sha256, size=size, source=f"{source} {file}")
    if not from_cache and cache_dir is not None:
        _store_cached(cache_dir, sha256, file, data)
    model = _open(runtime, data, manifest, source)
    return LoadedModel(model, manifest, time.perf_counter() - started, from_cache)


def load_artifact_dir(
    directory: Path, *, runtime: RuntimeName = "sklearn", allow_version_mismatch: bool = False
) -> LoadedModel:
    """Load an artifact directory (``model-store train --out``) through the same gate."""
    started = time.perf_counter()
    artifact = Artifact.read(directory)  # verifies sizes and sha256s
    manifest = artifact.manifest
    if manifest.version is None:
        manifest = manifest.model_copy(update={"version": "local"})
    source = str(directory)
    _served_file(
        manifest, runtime, source, "score it with the sklearn runtime", allow_version_mismatch
    )
    data = artifact.onnx_bytes if runtime == "onnx" else artifact.model_bytes
    assert data is not None  # _served_file refuses an onnx load without a form
    return LoadedModel(
        _open(runtime, data, manifest, source), manifest, time.perf_counter() - started, False
    )


def _served_file(
    manifest: Manifest, runtime: RuntimeName, source: str, remedy: str, allow_mismatch: bool
) -> tuple[str, str, int]:
    """(file, sha256, size) the runtime needs, once its versions are known to fit."""
    if runtime == "onnx":
        form = manifest.onnx
        if form is None:
            raise MissingFormError(
                f"{source} has no ONNX form ({manifest.onnx_missing_reason}); {remedy}"
            )
        _check_onnxruntime(form.onnxruntime, source, allow_mismatch)
        return ONNX_FILE, form.sha256, form.size_bytes
    from model_store.versions import RuntimeVersions, check_compatible

    check_compatible(manifest.runtime, RuntimeVersions.current(), allow_mismatch=allow_mismatch)
    return MODEL_FILE, manifest.sha256, manifest.size_bytes


def _check_onnxruntime(proven_with: str, source: str, allow_mismatch: bool) -> None:
    from model_store.runtimes.onnx_runtime import running_version

    running = running_version()
    if running == proven_with:
        return
    if proven_with.split(".")[0] != running.split(".")[0] and not allow_mismatch:
        raise IncompatibleModelError(
            f"{source}'s ONNX form was proven with ONNX Runtime {proven_with}; this runtime has "
            f"{running}, another major version: re-prove it with `model-store add-onnx`"
        )
    log.warning(
        "%s: ONNX form proven with ONNX Runtime %s, serving with %s", source, proven_with, running
    )


def _open(runtime: RuntimeName, data: bytes, manifest: Manifest, source: str) -> ModelRuntime:
    if runtime == "onnx":
        from model_store.runtimes.onnx_runtime import open_session

        assert manifest.onnx is not None
        return open_session(data, manifest.onnx, manifest.target.classes, source)
    from model_store.runtimes.sklearn_runtime import unpickle

    return unpickle(data, source)


def _cache_path(cache_dir: Path, sha256: str, file: str) -> Path:
    return cache_dir / f"{sha256}{Path(file).suffix}"


def _cached_bytes(cache_dir: Path | None, sha256: str, file: str) -> bytes | None:
    if cache_dir is None:
        return None
    try:
        data = _cache_path(cache_dir, sha256, file).read_bytes()
    except OSError:
        return None
    # /tmp outlives the process that wrote it: trust only bytes that still hash right.
    return data if sha256_hex(data) == sha256 else None


def _store_cached(cache_dir: Path, sha256: str, file: str, data: bytes) -> None:
    partial = cache_dir / f".{sha256}.{os.getpid()}.partial"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        partial.replace(_cache_path(cache_dir, sha256, file))
    except OSError as exc:
        # A full or read-only /tmp costs a re-download on the next cold start, nothing more.
        log.warning("could not cache model %s in %s: %s", sha256[:12], cache_dir, exc)
        with contextlib.suppress(OSError):
            partial.unlink()
