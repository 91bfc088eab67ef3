"""The one place boto3 clients are built, so endpoint overrides behave the same everywhere."""

from __future__ import annotations

import functools
import logging
import os
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_apigateway import APIGatewayClient
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_stepfunctions import SFNClient


# At DEBUG these log request headers (the session token among them) and request bodies
# (customer rows): they stay at INFO whatever level the rest of the process logs at.
SDK_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3")


def quiet_sdk_loggers() -> None:
    """Keep the AWS SDK's and urllib3's loggers at INFO or above."""
    for name in SDK_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.INFO:  # NOTSET (0) inherits the root's, DEBUG perhaps
            logger.setLevel(logging.INFO)


def _client(service: str, variable: str) -> Any:
    """A client honouring ``AWS_ENDPOINT_URL_<SERVICE>`` or ``AWS_ENDPOINT_URL``.

    Templates declare such variables empty by default (``sam local invoke`` only passes
    declared variables), and botocore would reject an empty endpoint, so empty means unset.
    The client is botocore's own (what boto3.client returns, without importing boto3 and
    s3transfer: about a tenth of a second less at every cold start).
    """
    from botocore.config import Config

    quiet_sdk_loggers()
    for name in (variable, "AWS_ENDPOINT_URL"):
        if not os.environ.get(name, "").strip():
            os.environ.pop(name, None)
    endpoint = (os.environ.get(variable) or os.environ.get("AWS_ENDPOINT_URL") or "").strip()
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30
    )
    # A botocore session is not thread-safe, and a timed-out model load may still be
    # making its clients in a worker thread when the next request makes its own.
    with _SESSION_LOCK:
        return _session().create_client(service, endpoint_url=endpoint or None, config=config)


_SESSION_LOCK = threading.Lock()


@functools.cache
def _session() -> Any:
    """One botocore session per process, as boto3.client's default session: a session
    loads its service models and credentials once (~0.15 s), each client after it ~10 ms."""
    import botocore.session

    return botocore.session.get_session()


def s3_client() -> S3Client:
    """An S3 client; ``AWS_ENDPOINT_URL_S3`` points it at e.g. a moto server."""
    client: S3Client = _client("s3", "AWS_ENDPOINT_URL_S3")
    return client


def stepfunctions_client() -> SFNClient:
    client: SFNClient = _client("stepfunctions", "AWS_ENDPOINT_URL_SFN")
    return client


def apigateway_client() -> APIGatewayClient:
    client: APIGatewayClient = _client("apigateway", "AWS_ENDPOINT_URL_API_GATEWAY")
    return client


def cloudformation_client() -> CloudFormationClient:
    client: CloudFormationClient = _client("cloudformation", "AWS_ENDPOINT_URL_CLOUDFORMATION")
    return client


def kms_client() -> KMSClient:
    client: KMSClient = _client("kms", "AWS_ENDPOINT_URL_KMS")
    return client
