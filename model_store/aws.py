"""The one place boto3 clients are built, so endpoint overrides behave the same everywhere."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def s3_client() -> S3Client:
    """An S3 client honouring ``AWS_ENDPOINT_URL_S3`` (e.g. a moto server).

    Templates declare the variable empty by default (``sam local invoke`` only passes
    declared variables), and botocore would reject an empty endpoint, so empty means unset.
    """
    import boto3
    from botocore.config import Config

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3", "").strip() or None
    if endpoint is None:
        os.environ.pop("AWS_ENDPOINT_URL_S3", None)
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30
    )
    return boto3.client("s3", endpoint_url=endpoint, config=config)
