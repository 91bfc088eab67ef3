"""Signed manifests: publish signs with a KMS key, the gate verifies with kms:Verify on the
required key only, and anything unsigned, re-signed by another key, or edited after signing
is refused like a tampered file. KMS is moto's (ECC_NIST_P256 and RSA keys, over HTTP)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest

from model_store.artifact import Artifact
from model_store.exceptions import (
    ModelStoreError,
    ModelUnavailableError,
    RegistryError,
    SignatureError,
    VersionExistsError,
)
from model_store.gate import load_model
from model_store.kms_http import KmsHttpVerifier
from model_store.registry import Registry, open_registry
from model_store.serving import ModelLoader
from model_store.signing import SIGNATURE_FILE, KmsSigner, KmsVerifier, Signature, verifier_for

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

NAME = "iris"


@pytest.fixture
def kms(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> KMSClient:
    """moto's KMS over HTTP; the code under test finds it through AWS_ENDPOINT_URL_KMS."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", moto_endpoint)
    return boto3.client("kms", region_name="us-east-1", endpoint_url=moto_endpoint)


def _key(kms: KMSClient, spec: str = "ECC_NIST_P256") -> str:
    made = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec=spec)  # type: ignore[arg-type]
    return made["KeyMetadata"]["Arn"]


@pytest.fixture
def key_arn(kms: KMSClient) -> str:
    return _key(kms)


@pytest.fixture
def other_key_arn(kms: KMSClient) -> str:
    return _key(kms)


@pytest.fixture
def local_registry(tmp_path: Path) -> Registry:
    return open_registry(tmp_path / "registry")


def _version_file(local_registry: Registry, version: str, file: str) -> Path:
    return Path(local_registry.location) / "models" / NAME / version / file


@pytest.mark.parametrize("spec", ["ECC_NIST_P256", "RSA_2048"])
def test_a_version_published_with_a_signing_key_loads_where_that_key_is_required(
    local_registry: Registry, iris_artifact: Artifact, kms: KMSClient, spec: str, tmp_path: Path
) -> None:
    key_arn = _key(kms, spec)
    local_registry.publish(iris_artifact, name=NAME, version="1", signer=KmsSigner(key_arn))

    signature = local_registry.read_signature(NAME, "1")
    assert signature is not None
    assert signature.key_arn == key_arn
    expected = "ECDSA_SHA_256" if spec.startswith("ECC") else "RSASSA_PSS_SHA_256"
    assert signature.signing_algorithm == expected
    for verifier in (KmsVerifier(key_arn, kms), KmsHttpVerifier(key_arn)):
        loaded = load_model(local_registry, NAME, "1", verifier=verifier, cache_dir=tmp_path / "c")
        assert loaded.version == "1"


def test_an_unsigned_version_is_refused_where_signatures_are_required(
    local_registry: Registry, iris_artifact: Artifact, key_arn: str
) -> None:
    local_registry.publish(iris_artifact, name=NAME, version="1")

    with pytest.raises(SignatureError, match=r"is not signed and signatures by .* are required"):
        load_model(local_registry, NAME, "1", verifier=KmsHttpVerifier(key_arn), cache_dir=None)
    # Without a verifier (signatures not required) it still loads.
    assert load_model(local_registry, NAME, "1", cache_dir=None).version == "1"


def test_a_manifest_edited_after_signing_is_refused(
    local_registry: Registry, iris_artifact: Artifact, key_arn: str
) -> None:
    """The writer who swaps model.joblib must also fix the manifest's sha256: that edit
    breaks the signature."""
    local_registry.publish(iris_artifact, name=NAME, version="1", signer=KmsSigner(key_arn))
    manifest_path = _version_file(local_registry, "1", "manifest.json")
    manifest = json.loads(manifest_path.read_bytes())
    manifest["sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest, indent=2))

    with pytest.raises(SignatureError, match="signature is for other manifest bytes"):
        load_model(local_registry, NAME, "1", verifier=KmsHttpVerifier(key_arn), cache_dir=None)


def test_a_signature_by_another_key_is_refused_even_when_it_claims_the_required_one(
    local_registry: Registry, iris_artifact: Artifact, key_arn: str, other_key_arn: str
) -> None:
    local_registry.publish(iris_artifact, name=NAME, version="1", signer=KmsSigner(other_key_arn))
    verifier = KmsHttpVerifier(key_arn)

    with pytest.raises(SignatureError, match=f"signed by {other_key_arn}, not by the required"):
        load_model(local_registry, NAME, "1", verifier=verifier, cache_dir=None)

    # A forger who can write the bucket rewrites the claim: KMS itself says no.
    sig_path = _version_file(local_registry, "1", SIGNATURE_FILE)
    forged = json.loads(sig_path.read_bytes())
    forged["key_arn"] = key_arn
    sig_path.write_text(json.dumps(forged))
    with pytest.raises(SignatureError, match="does not verify with"):
        load_model(local_registry, NAME, "1", verifier=verifier, cache_dir=None)


@pytest.mark.parametrize(
    "content", [b"not json", b'{"format": 2}', b'{"format": 1, "key_arn": "x"}']
)
def test_an_unreadable_signature_file_is_refused(
    local_registry: Registry, iris_artifact: Artifact, key_arn: str, content: bytes
) -> None:
    local_registry.publish(iris_artifact, name=NAME, version="1")
    _version_file(local_registry, "1", SIGNATURE_FILE).write_bytes(content)

    with pytest.raises(SignatureError, match="not a signature this code can read"):
        load_model(local_registry, NAME, "1", verifier=KmsHttpVerifier(key_arn), cache_dir=None)


def test_a_signature_that_is_not_base64_is_refused(
    local_registry: Registry, iris_artifact: Artifact, key_arn: str
) -> None:
    local_registry.publish(iris_artifact, name=NAME, version="1", signer=KmsSigner(key_arn))
    sig_path = _version_file(local_registry, "1", SIGNATURE_FILE)
    record = json.loads(sig_path.read_bytes())
    record["signature"] = "***"
    sig_path.write_text(json.dumps(record))

    with pytest.raises(SignatureError, match="not base64"):
        load_model(local_registry, NAME, "1", verifier=KmsHttpVerifier(key_arn), cache_dir=None)


def test_a_warm_loader_keeps_its_model_when_the_alias_moves_to_an_unsigned_version(
    local_registry: Registry, iris_artifact: Artifact, iris_artifact_2: Artifact, key_arn: str
) -> None:
    now = [0.0]
    local_registry.publish(iris_artifact, name=NAME, version="1", signer=KmsSigner(key_arn))
    local_registry.publish(iris_artifact_2, name=NAME, version="2")
    local_registry.promote(NAME, "1")
    loader = ModelLoader(
        local_registry,
        NAME,
        verifier=KmsHttpVerifier(key_arn),
        refresh_seconds=10,
        cache_dir=None,
        clock=lambda: now[0],
    )
    assert loader.get().version == "1"

    local_registry.promote(NAME, "2")
    now[0] = 11
    assert loader.get().version == "1"  # refused, the signed model keeps serving

    cold = ModelLoader(local_registry, NAME, verifier=KmsHttpVerifier(key_arn), cache_dir=None)
    with pytest.raises(ModelUnavailableError, match="is not signed"):
        cold.get()


def test_kms_that_cannot_answer_is_a_registry_error_not_a_bad_signature(
    local_registry: Registry, iris_artifact: Artifact, key_arn: str, free_port: int
) -> None:
    """Unreachable KMS is an outage (503, retried later), not proof of tampering."""
    local_registry.publish(iris_artifact, name=NAME, version="1", signer=KmsSigner(key_arn))
    verifier = KmsHttpVerifier(
        key_arn, environ={**_env(), "AWS_ENDPOINT_URL_KMS": f"http://127.0.0.1:{free_port}"}
    )
    with pytest.raises(RegistryError, match=r"KMS Verify with .* failed"):
        load_model(local_registry, NAME, "1", verifier=verifier, cache_dir=None)


def test_kms_refusing_access_is_a_registry_error(
    local_registry: Registry, iris_artifact: Artifact, key_arn: str
) -> None:
    local_registry.publish(iris_artifact, name=NAME, version="1", signer=KmsSigner(key_arn))
    missing = key_arn.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    signature_path = _version_file(local_registry, "1", SIGNATURE_FILE)
    record = json.loads(signature_path.read_bytes())
    record["key_arn"] = missing
    signature_path.write_text(json.dumps(record))
    with pytest.raises(RegistryError, match="NotFoundException"):
        load_model(local_registry, NAME, "1", verifier=KmsHttpVerifier(missing), cache_dir=None)


def test_the_functions_verify_without_botocore_where_the_environment_allows() -> None:
    arn = "arn:aws:kms:eu-west-1:123456789012:key/abc"
    assert isinstance(verifier_for(arn, direct_http=True), KmsHttpVerifier)
    assert isinstance(verifier_for(arn), KmsVerifier)
    assert KmsHttpVerifier(arn, environ=_env()).endpoint == "https://kms.eu-west-1.amazonaws.com"


def test_publishing_again_after_an_interruption_keeps_the_signature_of_the_same_bytes(
    local_registry: Registry, iris_artifact: Artifact, key_arn: str
) -> None:
    signer = KmsSigner(key_arn)
    local_registry.publish(iris_artifact, name=NAME, version="1", signer=signer)
    _version_file(local_registry, "1", "manifest.json").unlink()  # interrupted before the manifest

    local_registry.publish(iris_artifact, name=NAME, version="1", signer=signer)
    load_model(local_registry, NAME, "1", verifier=KmsHttpVerifier(key_arn), cache_dir=None)


def test_a_stale_signature_for_other_bytes_blocks_the_version(
    local_registry: Registry, iris_artifact: Artifact, iris_artifact_2: Artifact, key_arn: str
) -> None:
    signer = KmsSigner(key_arn)
    local_registry.publish(iris_artifact, name=NAME, version="1", signer=signer)
    version_dir = _version_file(local_registry, "1", "x").parent
    for file in ("manifest.json", "model.joblib", "model.onnx"):
        (version_dir / file).unlink(missing_ok=True)

    with pytest.raises(VersionExistsError, match="a signature for another manifest"):
        local_registry.publish(iris_artifact_2, name=NAME, version="1", signer=signer)


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
def test_signing_a_published_version_and_signing_it_twice(
    local_registry: Registry, iris_artifact: Artifact, key_arn: str, other_key_arn: str
) -> None:
    local_registry.publish(iris_artifact, name=NAME, version="1")
    local_registry.sign(NAME, "1", KmsSigner(key_arn))
    load_model(local_registry, NAME, "1", verifier=KmsHttpVerifier(key_arn), cache_dir=None)

    with pytest.raises(ModelStoreError, match=r"already signed by .*--replace"):
        local_registry.sign(NAME, "1", KmsSigner(other_key_arn))
    local_registry.sign(NAME, "1", KmsSigner(other_key_arn), replace=True)
    load_model(local_registry, NAME, "1", verifier=KmsHttpVerifier(other_key_arn), cache_dir=None)


def test_a_key_that_cannot_sign_is_refused_with_how_to_make_one(kms: KMSClient) -> None:
    encrypting = kms.create_key()["KeyMetadata"]["Arn"]
    with pytest.raises(ModelStoreError, match=r"not an asymmetric signing key.*SIGN_VERIFY"):
        KmsSigner(encrypting, kms)


def test_the_signature_file_round_trips(
    local_registry: Registry, iris_artifact: Artifact, key_arn: str
) -> None:
    local_registry.publish(iris_artifact, name=NAME, version="1", signer=KmsSigner(key_arn))
    raw = _version_file(local_registry, "1", SIGNATURE_FILE).read_bytes()
    assert Signature.from_json(raw, source="x").to_json() == raw


def _env() -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
