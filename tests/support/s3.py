"""Buckets on the session's moto server: make them, list and read what is in them."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import boto3

from model_store.artifact import Artifact
from model_store.registry import open_registry

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REGISTRY_PREFIX = "registry"  # where the tests' S3 registries keep their models


def new_bucket(s3: S3Client, purpose: str) -> str:
    name = f"{purpose}-{uuid.uuid4().hex[:20]}"
    s3.create_bucket(Bucket=name)
    return name


def bucket_with_model(endpoint: str, artifact: Artifact, prefix: str = "") -> str:
    """A new moto bucket whose registry (under PREFIX) has ARTIFACT as iris@1, promoted."""
    client = boto3.client("s3", endpoint_url=endpoint)
    bucket = new_bucket(client, "models")
    registry = open_registry(f"s3://{bucket}/{prefix}", s3_client=client)
    registry.publish(artifact, name="iris", version="1")
    registry.promote("iris", "1")
    return bucket


def keys_under(s3: S3Client, bucket: str, prefix: str = "") -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def read_object(s3: S3Client, bucket: str, key: str) -> str:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def pending_uploads(s3: S3Client, bucket: str) -> list[str]:
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
