"""The registry: versioned artifacts and movable aliases over any ObjectStore.

Layout (the same in a directory and under an S3 prefix)::

    models/<name>/<version>/model.joblib
    models/<name>/<version>/model.onnx       when the model has an ONNX form
    models/<name>/<version>/manifest.sig     when signed (model_store.signing): before it
    models/<name>/<version>/manifest.json    written last: its presence publishes
    models/<name>/aliases/<alias>.json       current version and the alias's history
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from model_store.artifact import MANIFEST_FILE, MODEL_FILE, ONNX_FILE, Artifact
from model_store.exceptions import (
    AliasNotFoundError,
    InvalidNameError,
    ManifestError,
    ModelNotFoundError,
    ModelStoreError,
    NothingToRollBackError,
    VersionExistsError,
    VersionNotFoundError,
)
from model_store.manifest import Manifest
from model_store.registry.stores import KeyExists, KeyNotFound, ObjectStore, S3Store
from model_store.signing import (
    SIGNATURE_FILE,
    Signature,
    Signer,
    Verifier,
    sign_manifest,
    verify_manifest,
)
from model_store.timestamps import Timestamp

# Matched against the whole string (fullmatch): "$" alone also matches before a final "\n".
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ALIAS = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_ALIASES_DIR = "aliases"


def check_segment(kind: str, value: str) -> str:
    """Names and versions become path segments: refuse anything that could escape one."""
    if not _SEGMENT.fullmatch(value) or value == _ALIASES_DIR or ".." in value:
        raise InvalidNameError(
            f"invalid {kind} {value!r}: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    return value


def check_alias(alias: str) -> str:
    if not _ALIAS.fullmatch(alias):
        raise InvalidNameError(
            f"invalid alias {alias!r}: use lowercase letters, digits, '_' and '-', "
            "starting with a letter"
        )
    return alias


def natural_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Sort "2" before "10" and timestamps in time order."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", version)
    )


class AliasEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["promote", "rollback"]
    version: str
    at: Timestamp


class AliasRecord(BaseModel):
    """An alias document. The current version and the rollback stack derive from history."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    alias: str
    history: list[AliasEvent]

    @property
    def stack(self) -> list[str]:
        """Versions the alias has held, oldest first; rollback pops, promote pushes."""
        stack: list[str] = []
        for event in self.history:
            if event.action == "promote":
                stack.append(event.version)
            else:
                stack.pop()
        return stack

    @property
    def version(self) -> str:
        return self.stack[-1]

    @property
    def updated_at(self) -> datetime:
        return self.history[-1].at


class Registry:
    """Publish, list, read, promote and roll back models in one ObjectStore."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def __repr__(self) -> str:
        return f"Registry({self.store.describe()})"

    @property
    def location(self) -> str:
        return self.store.describe()

    def deadline(self, seconds: float, *, attempts: int = 3) -> AbstractContextManager[None]:
        """Bound the store calls made in the block: SECONDS in all, ATTEMPTS tries each."""
        return self.store.deadline(seconds, attempts=attempts)

    # -- keys ---------------------------------------------------------------------------
    @staticmethod
    def _version_key(name: str, version: str, file: str) -> str:
        return (
            f"models/{check_segment('model name', name)}/{check_segment('version', version)}/{file}"
        )

    @staticmethod
    def _alias_key(name: str, alias: str) -> str:
        return (
            f"models/{check_segment('model name', name)}/{_ALIASES_DIR}/{check_alias(alias)}.json"
        )

    # -- artifacts ----------------------------------------------------------------------
    def publish(
        self,
        artifact: Artifact,
        *,
        name: str,
        version: str,
        signer: Signer | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Manifest:
        """Store an artifact as NAME/VERSION, signed by SIGNER when given. Existing versions
        are never overwritten. PROGRESS is called with (bytes sent, bytes in all) as the
        model files and the manifest go out (as they are sent, on S3)."""
        manifest_key = self._version_key(name, version, MANIFEST_FILE)
        artifact.verify(source="artifact to publish")
        try:
            self.store.read(manifest_key)
        except KeyNotFound:
            pass
        else:
            raise VersionExistsError(self._exists_message(name, version))
        manifest = artifact.manifest.model_copy(update={"name": name, "version": version})
        # Model files first, manifest last: a version is visible only once complete. The
        # writes are exclusive, so a losing racer can never replace the winner's bytes.
        files = [(MODEL_FILE, artifact.model_bytes)]
        if artifact.onnx_bytes is not None:
            files.append((ONNX_FILE, artifact.onnx_bytes))
        manifest_bytes = manifest.to_json()
        sent = _Sent(progress, sum(len(data) for _, data in files) + len(manifest_bytes))
        for file, data in files:
            key = self._version_key(name, version, file)
            try:
                self._write_new(key, data, sent)
            except KeyExists:
                # Our own interrupted publish left the same bytes: carry on. Other bytes
                # belong to another publisher (racing, or interrupted): that version is taken.
                if self.store.read(key) != data:
                    raise VersionExistsError(
                        f"{self._exists_message(name, version)} (another {file} is already "
                        f"stored at {self.store.describe(key)})"
                    ) from None
        if signer is not None:
            signature = sign_manifest(
                signer, name=name, version=version, manifest_bytes=manifest_bytes
            )
            self._write_signature(name, version, signature, publishing=True)
        try:
            self._write_new(manifest_key, manifest_bytes, sent)
        except KeyExists:
            raise VersionExistsError(self._exists_message(name, version)) from None
        return manifest

    def _write_new(self, key: str, data: bytes, sent: _Sent) -> None:
        """An exclusive write, counted in SENT (byte by byte where the store can say)."""
        before = sent.done
        if sent.report is not None and isinstance(self.store, S3Store):
            self.store.write(key, data, exclusive=True, progress=sent.add)
        else:
            self.store.write(key, data, exclusive=True)
        sent.set(before + len(data))

    def sign(self, name: str, version: str, signer: Signer, *, replace: bool = False) -> Signature:
        """Sign a published version's manifest (one published unsigned, or re-sign with
        another key when REPLACE)."""
        manifest_bytes = self._manifest_bytes(name, version)
        signature = sign_manifest(signer, name=name, version=version, manifest_bytes=manifest_bytes)
        self._write_signature(name, version, signature, replace=replace)
        return signature

    def read_signature(self, name: str, version: str) -> Signature | None:
        key = self._version_key(name, version, SIGNATURE_FILE)
        data = self._signature_bytes(name, version)
        return None if data is None else Signature.from_json(data, source=self.store.describe(key))

    def _signature_bytes(self, name: str, version: str) -> bytes | None:
        try:
            return self.store.read(self._version_key(name, version, SIGNATURE_FILE))
        except KeyNotFound:
            return None

    def _write_signature(
        self,
        name: str,
        version: str,
        signature: Signature,
        *,
        publishing: bool = False,
        replace: bool = False,
    ) -> None:
        key = self._version_key(name, version, SIGNATURE_FILE)
        try:
            self.store.write(key, signature.to_json(), exclusive=not replace)
        except KeyExists:
            existing = Signature.from_json(self.store.read(key), source=self.store.describe(key))
            if publishing and existing.manifest_sha256 == signature.manifest_sha256:
                return  # our own interrupted publish signed these same manifest bytes
            if publishing:
                raise VersionExistsError(
                    f"{self._exists_message(name, version)} (a signature for another manifest "
                    f"is already stored at {self.store.describe(key)})"
                ) from None
            raise ModelStoreError(
                f"{name}@{version} is already signed by {existing.key_arn}; "
                "pass --replace to sign it again"
            ) from None

    def _exists_message(self, name: str, version: str) -> str:
        return (
            f"{name} version {version} already exists in {self.location}; "
            "versions are immutable, publish under a new version"
        )

    def list_models(self) -> list[str]:
        names = {
            key.split("/")[1]
            for key in self.store.list_keys("models/")
            if key.count("/") == 3 and key.endswith("/" + MANIFEST_FILE)
        }
        return sorted(names)

    def list_versions(self, name: str) -> list[str]:
        """Published versions of NAME, oldest first (natural order)."""
        prefix = f"models/{check_segment('model name', name)}/"
        versions = [
            key[len(prefix) :].split("/")[0]
            for key in self.store.list_keys(prefix)
            if key.count("/") == 3 and key.endswith("/" + MANIFEST_FILE)
        ]
        return sorted(versions, key=natural_key)

    def read_manifest(
        self, name: str, version: str, *, verifier: Verifier | None = None
    ) -> Manifest:
        """NAME@VERSION's manifest; with a VERIFIER, only once its key vouches for the
        manifest's exact bytes (SignatureError otherwise)."""
        key = self._version_key(name, version, MANIFEST_FILE)
        data = self._manifest_bytes(name, version)
        if verifier is not None:
            verify_manifest(
                verifier,
                self._signature_bytes(name, version),
                name=name,
                version=version,
                manifest_bytes=data,
                source=f"{name}@{version}",
            )
        manifest = Manifest.from_json(data, source=self.store.describe(key))
        if manifest.name != name or manifest.version != version:
            raise ManifestError(
                f"{self.store.describe(key)} describes {manifest.name}@{manifest.version}, "
                f"not {name}@{version}"
            )
        return manifest

    def _manifest_bytes(self, name: str, version: str) -> bytes:
        try:
            return self.store.read(self._version_key(name, version, MANIFEST_FILE))
        except KeyNotFound:
            raise self._missing_version(name, version) from None

    def read_model_bytes(self, name: str, version: str) -> bytes:
        return self.read_file(name, version, MODEL_FILE)

    def read_onnx_bytes(self, name: str, version: str) -> bytes:
        return self.read_file(name, version, ONNX_FILE)

    def read_file(self, name: str, version: str, file: str) -> bytes:
        key = self._version_key(name, version, file)
        try:
            return self.store.read(key)
        except KeyNotFound:
            raise self._missing_version(name, version) from None

    def _missing_version(self, name: str, version: str) -> Exception:
        if not self.list_versions(name):
            return ModelNotFoundError(f"no model named {name!r} in {self.location}")
        return VersionNotFoundError(f"{name} has no version {version!r} in {self.location}")

    # -- aliases ------------------------------------------------------------------------
    def alias_record(self, name: str, alias: str) -> AliasRecord:
        key = self._alias_key(name, alias)
        try:
            data = self.store.read(key)
        except KeyNotFound:
            raise AliasNotFoundError(
                f"{name} has no alias {alias!r} in {self.location}"
                + ("" if self.list_versions(name) else f" (no model named {name!r} at all)")
            ) from None
        try:
            return AliasRecord.model_validate_json(data)
        except ValidationError as exc:
            raise ManifestError(f"{self.store.describe(key)} is invalid: {exc}") from None

    def resolve_ref(self, ref: str, *, default_alias: str = "production") -> tuple[str, str]:
        """``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS`` to (name, version); versions first."""
        name, _, target = ref.partition("@")
        target = target or default_alias
        if target in self.list_versions(name):
            return name, target
        try:
            return name, self.resolve_alias(name, target)
        except (AliasNotFoundError, InvalidNameError):
            raise VersionNotFoundError(
                f"{name} has neither a version nor an alias {target!r} in {self.location}"
            ) from None

    def resolve_alias(self, name: str, alias: str) -> str:
        return self.alias_record(name, alias).version

    def list_aliases(self, name: str) -> dict[str, str]:
        prefix = f"models/{check_segment('model name', name)}/{_ALIASES_DIR}/"
        aliases = [
            key[len(prefix) : -len(".json")]
            for key in self.store.list_keys(prefix)
            if key.endswith(".json")
        ]
        return {alias: self.resolve_alias(name, alias) for alias in sorted(aliases)}

    def promote(self, name: str, version: str, *, alias: str = "production") -> AliasRecord:
        """Point ALIAS at VERSION (which must be published), keeping the history."""
        self.read_manifest(name, version)
        try:
            history = self.alias_record(name, alias).history
        except AliasNotFoundError:
            history = []
        return self._write_alias(name, alias, [*history, _event("promote", version)])

    def rollback(self, name: str, *, alias: str = "production") -> AliasRecord:
        """Return ALIAS to the version it held before its current one."""
        record = self.alias_record(name, alias)
        stack = record.stack
        if len(stack) < 2:
            raise NothingToRollBackError(
                f"{name}@{alias} is at {stack[-1]} and has no earlier promotion to return to"
            )
        return self._write_alias(name, alias, [*record.history, _event("rollback", stack[-2])])

    def _write_alias(self, name: str, alias: str, history: list[AliasEvent]) -> AliasRecord:
        record = AliasRecord(name=name, alias=alias, history=history)
        self.store.write(self._alias_key(name, alias), record.model_dump_json(indent=2).encode())
        return record


class _Sent:
    """Bytes of a publish sent so far, told to its progress callback (if any)."""

    def __init__(self, report: Callable[[int, int], None] | None, total: int) -> None:
        self.report = report
        self.total = total
        self.done = 0

    def add(self, amount: int) -> None:
        self.set(self.done + amount)  # negative when a retry rewinds the body

    def set(self, done: int) -> None:
        self.done = done
        if self.report is not None:
            self.report(max(0, min(done, self.total)), self.total)


def _event(action: Literal["promote", "rollback"], version: str) -> AliasEvent:
    return AliasEvent(action=action, version=version, at=datetime.now(UTC))
