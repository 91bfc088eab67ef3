"""The API where signatures are required: a signed model answers, an unsigned or re-signed
one is a 503 like a tampered file, and a warm instance keeps the signed model it has."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import boto3
import pytest
from fastapi.testclient import TestClient

from model_store.artifact import Artifact
from model_store.registry import Registry
from model_store.signing import KmsSigner
from predict_api.service import ModelService

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

MakeApi = Callable[..., tuple[TestClient, ModelService]]
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@pytest.fixture
def kms(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> KMSClient:
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", moto_endpoint)
    return boto3.client("kms", region_name="us-east-1", endpoint_url=moto_endpoint)


@pytest.fixture
def signer(kms: KMSClient) -> KmsSigner:
    made = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")
    return KmsSigner(made["KeyMetadata"]["Arn"], kms)


def test_a_signed_model_answers_and_an_unsigned_one_is_a_503(
    make_api: MakeApi,
    bucket_registry: Registry,
    empty_bucket: str,
    iris_artifact: Artifact,
    iris_artifact_2: Artifact,
    signer: KmsSigner,
) -> None:
    bucket_registry.publish(iris_artifact, name="iris", version="1", signer=signer)
    bucket_registry.publish(iris_artifact_2, name="iris", version="2")
    bucket_registry.promote("iris", "1")
    warm, _ = make_api(empty_bucket, model_signing_key_arn=signer.key_arn, model_refresh_seconds=0)
    assert warm.post("/predict", json=SETOSA).status_code == 200

    bucket_registry.promote("iris", "2")
    response = warm.post("/predict", json=SETOSA)
    assert response.status_code == 200, "the warm instance keeps its signed model"
    assert response.headers["x-model-version"] == "1"

    cold, _ = make_api(empty_bucket, model_signing_key_arn=signer.key_arn)
    refused = cold.post("/predict", json=SETOSA)
    assert refused.status_code == 503
    assert refused.headers["retry-after"]
    assert refused.json()["error"]["code"] == "model_unavailable"

    # The same unsigned model where signatures are not required: it answers.
    unchecked, _ = make_api(empty_bucket)
    assert unchecked.post("/predict", json=SETOSA).headers["x-model-version"] == "2"
