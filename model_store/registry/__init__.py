"""Model registry: versioned artifacts and aliases in a directory or an S3 prefix."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from model_store.exceptions import InvalidNameError
from model_store.registry.core import AliasEvent, AliasRecord, Registry, natural_key
from model_store.registry.stores import LocalStore, ObjectStore, S3Store

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = [
    "AliasEvent",
    "AliasRecord",
    "LocalStore",
    "ObjectStore",
    "Registry",
    "S3Store",
    "natural_key",
    "open_registry",
]


def open_registry(
    location: str | Path, *, s3_client: S3Client | None = None, direct_http: bool = False
) -> Registry:
    """``s3://bucket/prefix`` or a directory path to a Registry. No I/O happens here.

    ``direct_http``: speak to S3 without botocore (``S3HttpStore``) where the environment
    allows it, as the functions do for a shorter cold start; botocore otherwise.
    """
    text = str(location)
    if text.startswith("s3://"):
        bucket, _, prefix = text[len("s3://") :].partition("/")
        if not bucket:
            raise InvalidNameError(f"registry {text!r} names no bucket (s3://BUCKET/PREFIX)")
        if s3_client is None and direct_http:
            from model_store.registry import s3_http

            if s3_http.available():
                return Registry(s3_http.S3HttpStore(bucket, prefix))
        if s3_client is None:
            from model_store.aws import s3_client as make_client

            s3_client = make_client()
        return Registry(S3Store(s3_client, bucket, prefix))
    if "://" in text:
        raise InvalidNameError(f"registry {text!r}: use s3://BUCKET/PREFIX or a directory path")
    return Registry(LocalStore(Path(text)))
