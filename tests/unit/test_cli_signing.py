"""The signing commands as a user runs them: publish --sign-key, sign, verify, show, and the
warning when an alias moves from a signed version to an unsigned one."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from tests.support.cli import assert_clean_error, ok, run


@pytest.fixture
def env(tmp_path: Path, moto_endpoint: str) -> dict[str, str]:
    return {
        "MODEL_STORE_REGISTRY": str(tmp_path / "registry"),
        "AWS_ENDPOINT_URL_KMS": moto_endpoint,
    }


@pytest.fixture
def key_arn(moto_endpoint: str) -> str:
    kms = boto3.client("kms", region_name="us-east-1", endpoint_url=moto_endpoint)
    made = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")
    return made["KeyMetadata"]["Arn"]


def test_publish_signed_then_show_and_verify(
    env: dict[str, str], key_arn: str, artifact_dir: Path
) -> None:
    published = ok("publish", str(artifact_dir), "--version", "1", "--sign-key", key_arn, env=env)
    assert f"signed by {key_arn}" in published
    shown = json.loads(ok("show", "iris@1", "--json", env=env))
    assert shown["signature"]["key_arn"] == key_arn
    assert "ECDSA_SHA_256 by" in ok("show", "iris@1", env=env)
    assert "verified: ECDSA_SHA_256" in ok("verify", "iris@1", "--key", key_arn, env=env)


def test_an_unsigned_version_fails_verify_and_sign_fixes_it(
    env: dict[str, str], key_arn: str, artifact_dir: Path
) -> None:
    assert "unsigned" in ok("publish", str(artifact_dir), "--version", "1", env=env)
    assert "signature   unsigned" in ok("show", "iris@1", env=env)
    assert_clean_error(run("verify", "iris@1", "--key", key_arn, env=env), 1, "is not signed")

    assert f"signed ECDSA_SHA_256 by {key_arn}" in ok(
        "sign", "iris@1", "--sign-key", key_arn, env=env
    )
    ok("verify", "iris@1", "--key", key_arn, env=env)
    assert_clean_error(run("sign", "iris@1", "--sign-key", key_arn, env=env), 1, "already signed")
    ok("sign", "iris@1", "--sign-key", key_arn, "--replace", env=env)


def test_the_sign_key_can_come_from_the_environment(
    env: dict[str, str], key_arn: str, artifact_dir: Path
) -> None:
    with_key = {**env, "MODEL_STORE_SIGN_KEY": key_arn}
    assert f"signed by {key_arn}" in ok(
        "publish", str(artifact_dir), "--version", "1", env=with_key
    )


def test_a_key_that_cannot_sign_fails_before_anything_is_published(
    env: dict[str, str], moto_endpoint: str, artifact_dir: Path
) -> None:
    kms = boto3.client("kms", region_name="us-east-1", endpoint_url=moto_endpoint)
    encrypting = kms.create_key()["KeyMetadata"]["Arn"]
    assert_clean_error(
        run("publish", str(artifact_dir), "--version", "1", "--sign-key", encrypting, env=env),
        1,
        "not an asymmetric signing key",
    )
    assert_clean_error(run("list", "iris", env=env), 1, "no model named")


def test_promote_warns_when_the_alias_leaves_a_signed_version_for_an_unsigned_one(
    env: dict[str, str], key_arn: str, artifact_dir: Path
) -> None:
    ok("publish", str(artifact_dir), "--version", "1", "--sign-key", key_arn, env=env)
    ok("publish", str(artifact_dir), "--version", "2", env=env)
    first = run("promote", "iris", "1", env=env)
    assert "not signed" not in first.stderr
    moved = run("promote", "iris", "2", env=env)
    assert moved.returncode == 0
    assert "iris@2 is not signed, and iris@1 was" in moved.stderr
    back = run("rollback", "iris", env=env)
    assert "not signed" not in back.stderr
