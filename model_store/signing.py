"""Manifest signatures: who published a model, not only that its bytes are whole.

The sha256s in ``manifest.json`` prove the model files are the ones it names, but whoever
can write the bucket can write both, and joblib is pickle. A signature made at publish
with an asymmetric KMS key (``model-store publish --sign-key``) proves that a holder of
``kms:Sign`` on that key vouched for these exact manifest bytes. Functions given the key's
ARN verify with ``kms:Verify`` on that key only (no crypto library in a layer) before
anything else of the version is read; a missing or wrong signature is a SignatureError,
refused like a tampered file.

What is signed is a short statement (KMS signs at most 4,096 raw bytes): the model's
name and version and the sha256 of the manifest's bytes, so a signature cannot be moved
to another name or version.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from model_store.artifact import sha256_hex
from model_store.exceptions import ModelStoreError, RegistryError, SignatureError
from model_store.timestamps import Timestamp

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

SIGNATURE_FILE = "manifest.sig"
PURPOSE = "sklearn-serverless model manifest"
# What a SIGN_VERIFY key offers, in the order we pick from: ECDSA keys first (short
# signatures, fast), then RSA-PSS over PKCS#1 v1.5.
PREFERRED_ALGORITHMS = (
    "ECDSA_SHA_256",
    "ECDSA_SHA_384",
    "ECDSA_SHA_512",
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
)


def statement(*, name: str, version: str, manifest_bytes: bytes) -> bytes:
    """The exact bytes signed and verified for NAME@VERSION's manifest."""
    return json.dumps(
        {
            "purpose": PURPOSE,
            "name": name,
            "version": version,
            "manifest_sha256": sha256_hex(manifest_bytes),
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


class Signature(BaseModel):
    """``manifest.sig``: a KMS signature over a version's statement."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = 1
    key_arn: str
    signing_algorithm: str
    manifest_sha256: str
    signature: str  # base64, as KMS returns it
    signed_at: Timestamp

    def to_json(self) -> bytes:
        return (self.model_dump_json(indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, *, source: str) -> Signature:
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise SignatureError(
                f"{source} is not a signature this code can read "
                f"({exc.error_count()} errors): refusing to load the version"
            ) from None

    def signature_bytes(self) -> bytes:
        try:
            return base64.b64decode(self.signature, validate=True)
        except binascii.Error:
            raise SignatureError("the signature is not base64") from None


class Signer(Protocol):
    @property
    def key_arn(self) -> str: ...

    def sign(self, message: bytes) -> tuple[str, bytes]:
        """(signing algorithm, signature) of MESSAGE."""
        ...


class Verifier(Protocol):
    @property
    def key_arn(self) -> str: ...

    def verify(self, message: bytes, signature: bytes, algorithm: str) -> bool:
        """Whether SIGNATURE is this key's over MESSAGE; raises RegistryError when it cannot
        tell (KMS unreachable, access denied)."""
        ...


def sign_manifest(signer: Signer, *, name: str, version: str, manifest_bytes: bytes) -> Signature:
    algorithm, signature = signer.sign(
        statement(name=name, version=version, manifest_bytes=manifest_bytes)
    )
    return Signature(
        key_arn=signer.key_arn,
        signing_algorithm=algorithm,
        manifest_sha256=sha256_hex(manifest_bytes),
        signature=base64.b64encode(signature).decode(),
        signed_at=datetime.now(UTC),
    )


def verify_manifest(
    verifier: Verifier,
    signature_json: bytes | None,
    *,
    name: str,
    version: str,
    manifest_bytes: bytes,
    source: str,
) -> Signature:
    """The signature of NAME@VERSION's manifest, once the verifier's key vouches for it."""
    refuse = "refusing to load it"
    if signature_json is None:
        raise SignatureError(
            f"{source} is not signed and signatures by {verifier.key_arn} are required: {refuse}"
        )
    signature = Signature.from_json(signature_json, source=f"{source}'s signature")
    if signature.manifest_sha256 != sha256_hex(manifest_bytes):
        raise SignatureError(f"{source}'s signature is for other manifest bytes: {refuse}")
    if signature.key_arn != verifier.key_arn:
        raise SignatureError(
            f"{source} is signed by {signature.key_arn}, not by the required key "
            f"{verifier.key_arn}: {refuse}"
        )
    message = statement(name=name, version=version, manifest_bytes=manifest_bytes)
    if not verifier.verify(message, signature.signature_bytes(), signature.signing_algorithm):
        raise SignatureError(
            f"{source}'s signature does not verify with {verifier.key_arn}: {refuse}"
        )
    return signature


def kms_region(key_arn: str) -> str | None:
    """The region of a KMS key ARN (arn:PARTITION:kms:REGION:ACCOUNT:key/ID), else None."""
    parts = key_arn.split(":")
    if len(parts) >= 6 and parts[0] == "arn" and parts[2] == "kms" and parts[3]:
        return parts[3]
    return None


class KmsSigner:
    """Signs with an asymmetric KMS key through botocore (the CLI's side)."""

    def __init__(self, key_id: str, client: KMSClient | None = None) -> None:
        if client is None:
            from model_store.aws import kms_client

            client = kms_client()
        self._client = client
        try:
            metadata = client.describe_key(KeyId=key_id)["KeyMetadata"]
        except Exception as exc:  # botocore's ClientError and its connection errors
            raise ModelStoreError(f"cannot use KMS key {key_id}: {exc}") from exc
        if metadata.get("KeyUsage") != "SIGN_VERIFY":
            raise ModelStoreError(
                f"KMS key {key_id} is not an asymmetric signing key (its usage is "
                f"{metadata.get('KeyUsage')}); create one with --key-usage SIGN_VERIFY "
                "--key-spec ECC_NIST_P256"
            )
        offered = metadata.get("SigningAlgorithms", [])
        chosen = [a for a in PREFERRED_ALGORITHMS if a in offered]
        if not chosen:
            raise ModelStoreError(f"KMS key {key_id} offers no known algorithm: {offered}")
        self._key_arn = metadata["Arn"]
        self.algorithm = chosen[0]

    @property
    def key_arn(self) -> str:
        return self._key_arn

    def sign(self, message: bytes) -> tuple[str, bytes]:
        try:
            answer = self._client.sign(
                KeyId=self._key_arn,
                Message=message,
                MessageType="RAW",
                SigningAlgorithm=self.algorithm,
            )
        except Exception as exc:
            raise ModelStoreError(f"KMS could not sign with {self._key_arn}: {exc}") from exc
        return self.algorithm, answer["Signature"]


class KmsVerifier:
    """Verifies with kms:Verify through botocore (the CLI's `verify`, and functions where
    the standard-library client cannot be used)."""

    def __init__(self, key_arn: str, client: KMSClient | None = None) -> None:
        self._key_arn = key_arn
        self._client = client

    @property
    def key_arn(self) -> str:
        return self._key_arn

    def verify(self, message: bytes, signature: bytes, algorithm: str) -> bool:
        if self._client is None:
            from model_store.aws import kms_client

            self._client = kms_client()
        try:
            answer = self._client.verify(
                KeyId=self._key_arn,
                Message=message,
                MessageType="RAW",
                Signature=signature,
                SigningAlgorithm=algorithm,  # type: ignore[arg-type]
            )
        except self._client.exceptions.KMSInvalidSignatureException:
            return False
        except Exception as exc:
            raise RegistryError(f"KMS Verify with {self._key_arn} failed: {exc}") from exc
        return bool(answer.get("SignatureValid"))


def verifier_for(key_arn: str, *, direct_http: bool = False) -> Verifier:
    """A verifier for KEY_ARN: the standard-library client where the environment allows it
    (as the functions run, sparing botocore's import), botocore otherwise."""
    if direct_http:
        from model_store import kms_http
        from model_store.registry import s3_http

        if s3_http.available():
            return kms_http.KmsHttpVerifier(key_arn)
    return KmsVerifier(key_arn)
