"""The loading gate: manifest, compatibility, bytes, sha256, and only then unpickling.

Unpickling runs code, so nothing reaches ``joblib.load`` unless the manifest vouches for
exactly those bytes and the running scikit-learn can read them.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib

from model_store.artifact import Artifact, sha256_hex
from model_store.exceptions import IntegrityError
from model_store.manifest import Manifest
from model_store.registry import Registry
from model_store.versions import RuntimeVersions, check_compatible

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path(tempfile.gettempdir()) / "model-store-cache"


@dataclass(frozen=True)
class LoadedModel:
    estimator: Any
    manifest: Manifest
    load_seconds: float
    from_cache: bool

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version or ""


def load_model(
    registry: Registry,
    name: str,
    version: str,
    *,
    cache_dir: Path | None = DEFAULT_CACHE_DIR,
    allow_version_mismatch: bool = False,
) -> LoadedModel:
    """Load NAME@VERSION through the gate; raises a typed ModelStoreError on refusal."""
    started = time.perf_counter()
    manifest = registry.read_manifest(name, version)
    check_compatible(
        manifest.runtime, RuntimeVersions.current(), allow_mismatch=allow_version_mismatch
    )
    data = _cached_bytes(cache_dir, manifest.sha256)
    from_cache = data is not None
    if data is None:
        data = registry.read_model_bytes(name, version)
    Artifact(data, manifest).verify(source=f"{name}@{version} model.joblib")
    if not from_cache and cache_dir is not None:
        _store_cached(cache_dir, manifest.sha256, data)
    estimator = _unpickle(data, f"{name}@{version}")
    return LoadedModel(estimator, manifest, time.perf_counter() - started, from_cache)


def load_artifact_dir(directory: Path, *, allow_version_mismatch: bool = False) -> LoadedModel:
    """Load an artifact directory (``model-store train --out``) through the same gate."""
    started = time.perf_counter()
    artifact = Artifact.read(directory)  # verifies size and sha256
    manifest = artifact.manifest
    check_compatible(
        manifest.runtime, RuntimeVersions.current(), allow_mismatch=allow_version_mismatch
    )
    if manifest.version is None:
        manifest = manifest.model_copy(update={"version": "local"})
    return LoadedModel(
        _unpickle(artifact.model_bytes, str(directory)),
        manifest,
        time.perf_counter() - started,
        False,
    )


def _unpickle(data: bytes, source: str) -> Any:
    try:
        return joblib.load(io.BytesIO(data))
    except Exception as exc:
        raise IntegrityError(f"{source}: model.joblib cannot be unpickled: {exc}") from exc


def _cached_bytes(cache_dir: Path | None, sha256: str) -> bytes | None:
    if cache_dir is None:
        return None
    try:
        data = (cache_dir / f"{sha256}.joblib").read_bytes()
    except OSError:
        return None
    # /tmp outlives the process that wrote it: trust only bytes that still hash right.
    return data if sha256_hex(data) == sha256 else None


def _store_cached(cache_dir: Path, sha256: str, data: bytes) -> None:
    partial = cache_dir / f".{sha256}.{os.getpid()}.partial"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        partial.replace(cache_dir / f"{sha256}.joblib")
    except OSError as exc:
        # A full or read-only /tmp costs a re-download on the next cold start, nothing more.
        log.warning("could not cache model %s in %s: %s", sha256[:12], cache_dir, exc)
        with contextlib.suppress(OSError):
            partial.unlink()
