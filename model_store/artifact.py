"""An artifact on disk: ``model.joblib`` (compressed joblib), ``model.onnx`` when the model
has an ONNX form, and ``manifest.json`` that vouches for both."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from model_store.exceptions import IntegrityError, ManifestError, ModelStoreError
from model_store.manifest import Manifest

MODEL_FILE = "model.joblib"
ONNX_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_bytes(data: bytes, *, sha256: str, size: int, source: str) -> None:
    """Refuse bytes that are not the ones a manifest names (before anything reads them)."""
    if len(data) != size:
        raise IntegrityError(
            f"{source} is {len(data)} bytes, manifest says {size}: refusing to load it"
        )
    digest = sha256_hex(data)
    if digest != sha256:
        raise IntegrityError(
            f"{source} has sha256 {digest}, manifest says {sha256}: refusing to load it"
        )


def dump_model(model: object, compress: int) -> bytes:
    """Serialise with joblib's zlib compression at ``compress`` (0 = none)."""
    import joblib

    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=compress)
    return buffer.getvalue()


@dataclass(frozen=True)
class Artifact:
    """Model bytes, their ONNX form if any, and the manifest that vouches for them."""

    model_bytes: bytes
    manifest: Manifest
    onnx_bytes: bytes | None = None

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MODEL_FILE).write_bytes(self.model_bytes)
        onnx_path = directory / ONNX_FILE
        if self.onnx_bytes is not None:
            onnx_path.write_bytes(self.onnx_bytes)
        else:
            onnx_path.unlink(missing_ok=True)  # a stale one from an earlier artifact
        (directory / MANIFEST_FILE).write_bytes(self.manifest.to_json())
        return directory

    @classmethod
    def read(cls, directory: Path) -> Artifact:
        """Read an artifact directory, checking the bytes against the manifest."""
        manifest_path = directory / MANIFEST_FILE
        model_path = directory / MODEL_FILE
        if not directory.is_dir():
            raise ModelStoreError(f"{directory} is not a directory")
        for path in (manifest_path, model_path):
            if not path.is_file():
                raise ModelStoreError(f"{directory} is not an artifact directory: no {path.name}")
        try:
            manifest = Manifest.from_json(manifest_path.read_bytes(), source=str(manifest_path))
        except OSError as exc:
            raise ManifestError(f"cannot read {manifest_path}: {exc}") from None
        onnx_path = directory / ONNX_FILE
        onnx = onnx_path.read_bytes() if manifest.onnx is not None and onnx_path.is_file() else None
        artifact = cls(model_path.read_bytes(), manifest, onnx)
        artifact.verify(source=str(directory))
        return artifact

    def verify(self, *, source: str) -> None:
        """Every file the manifest names is present and is exactly what it names."""
        verify_bytes(
            self.model_bytes,
            sha256=self.manifest.sha256,
            size=self.manifest.size_bytes,
            source=f"{source} {MODEL_FILE}",
        )
        form = self.manifest.onnx
        if form is None:
            if self.onnx_bytes is not None:
                raise IntegrityError(f"{source} has a {ONNX_FILE} its manifest does not name")
            return
        if self.onnx_bytes is None:
            raise IntegrityError(f"{source}: the manifest names a {ONNX_FILE} that is missing")
        verify_bytes(
            self.onnx_bytes,
            sha256=form.sha256,
            size=form.size_bytes,
            source=f"{source} {ONNX_FILE}",
        )
