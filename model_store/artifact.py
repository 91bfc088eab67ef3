"""An artifact on disk: ``model.joblib`` (compressed joblib) beside ``manifest.json``."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import joblib

from model_store.exceptions import IntegrityError, ManifestError, ModelStoreError
from model_store.manifest import Manifest

MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dump_model(model: object, compress: int) -> bytes:
    """Serialise with joblib's zlib compression at ``compress`` (0 = none)."""
    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=compress)
    return buffer.getvalue()


@dataclass(frozen=True)
class Artifact:
    """Model bytes and the manifest that vouches for them."""

    model_bytes: bytes
    manifest: Manifest

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MODEL_FILE).write_bytes(self.model_bytes)
        (directory / MANIFEST_FILE).write_bytes(self.manifest.to_json())
        return directory

    @classmethod
    def read(cls, directory: Path) -> Artifact:
        """Read an artifact directory, checking the bytes against the manifest."""
        manifest_path = directory / MANIFEST_FILE
        model_path = directory / MODEL_FILE
        for path in (manifest_path, model_path):
            if not path.is_file():
                raise ModelStoreError(f"{directory} is not an artifact directory: no {path.name}")
        try:
            manifest = Manifest.from_json(manifest_path.read_bytes(), source=str(manifest_path))
        except OSError as exc:
            raise ManifestError(f"cannot read {manifest_path}: {exc}") from None
        artifact = cls(model_path.read_bytes(), manifest)
        artifact.verify(source=str(model_path))
        return artifact

    def verify(self, *, source: str) -> None:
        """Refuse bytes that are not the ones the manifest names (before any unpickling)."""
        if len(self.model_bytes) != self.manifest.size_bytes:
            raise IntegrityError(
                f"{source} is {len(self.model_bytes)} bytes, manifest says "
                f"{self.manifest.size_bytes}: refusing to load it"
            )
        digest = sha256_hex(self.model_bytes)
        if digest != self.manifest.sha256:
            raise IntegrityError(
                f"{source} has sha256 {digest}, manifest says {self.manifest.sha256}: "
                "refusing to load it"
            )
