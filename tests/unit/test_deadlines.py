"""S3 that hangs, fails or drags, in front of the registry: bounded waits, old model kept.

The registry is read through the functions' own client (S3HttpStore) via a fault-injecting
proxy in front of the session's moto server (tests/support/faults.py).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import boto3
import pytest

from model_store import ModelLoader, ModelUnavailableError
from model_store.artifact import Artifact
from model_store.exceptions import RegistryError
from model_store.registry import Registry
from model_store.registry.s3_http import S3HttpStore
from tests.support.faults import FaultyS3


@pytest.fixture
def s3_proxy(moto_endpoint: str) -> Iterator[FaultyS3]:
    with FaultyS3(moto_endpoint) as proxy:
        yield proxy


@pytest.fixture
def proxied_registry(moto_endpoint: str, s3_proxy: FaultyS3, iris_artifact: Artifact) -> Registry:
    """iris@1 promoted in a fresh bucket, read through the proxy."""
    bucket = f"deadlines-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    client.create_bucket(Bucket=bucket)
    environ = {**os.environ, "AWS_ENDPOINT_URL_S3": s3_proxy.url}
    registry = Registry(S3HttpStore(bucket, "registry", environ=environ))
    registry.publish(iris_artifact, name="iris", version="1")
    registry.promote("iris", "1")
    return registry


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _timed(call: object) -> tuple[object, float]:
    started = time.monotonic()
    assert callable(call)
    try:
        result = call()
    except Exception as exc:  # the outcome is what the test asserts
        result = exc
    return result, time.monotonic() - started


# -- the store ---------------------------------------------------------------------------


def test_a_hung_s3_fails_within_the_deadline_with_one_attempt(
    proxied_registry: Registry, s3_proxy: FaultyS3
) -> None:
    s3_proxy.mode = "hang"
    before = len(s3_proxy.requests)

    with proxied_registry.deadline(0.5, attempts=1):
        outcome, seconds = _timed(lambda: proxied_registry.read_manifest("iris", "1"))

    assert isinstance(outcome, RegistryError)
    assert "no answer within its deadline" in str(outcome)
    assert seconds < 1.5
    assert len(s3_proxy.requests) - before == 1


def test_a_slow_drip_cannot_outlast_the_deadline(
    proxied_registry: Registry, s3_proxy: FaultyS3
) -> None:
    s3_proxy.mode, s3_proxy.delay = "slow", 2.0

    with proxied_registry.deadline(0.5):
        outcome, seconds = _timed(lambda: proxied_registry.read_manifest("iris", "1"))

    assert isinstance(outcome, RegistryError)
    assert seconds < 1.5


def test_throttling_is_retried_within_the_deadline(
    proxied_registry: Registry, s3_proxy: FaultyS3
) -> None:
    s3_proxy.mode = "error"
    before = len(s3_proxy.requests)

    with proxied_registry.deadline(3.0, attempts=3):
        outcome, _ = _timed(lambda: proxied_registry.read_manifest("iris", "1"))

    assert isinstance(outcome, RegistryError)
    assert "SlowDown" in str(outcome)
    assert len(s3_proxy.requests) - before == 3


# -- the loader ---------------------------------------------------------------------------


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
def test_a_cold_load_from_a_hung_s3_is_unavailable_within_its_timeout_then_recovers(
    proxied_registry: Registry, s3_proxy: FaultyS3
) -> None:
    loader = ModelLoader(proxied_registry, "iris", cache_dir=None, load_timeout=1.0)
    s3_proxy.mode = "hang"

    outcome, seconds = _timed(loader.get)

    assert isinstance(outcome, ModelUnavailableError)
    assert seconds < 2.5
    s3_proxy.mode = "pass"
    assert loader.get().version == "1"


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
def test_a_due_refresh_against_a_hung_s3_serves_the_model_it_has_within_a_second(
    proxied_registry: Registry, s3_proxy: FaultyS3, iris_artifact_2: Artifact
) -> None:
    clock = Clock()
    loader = ModelLoader(proxied_registry, "iris", cache_dir=None, refresh_seconds=60, clock=clock)
    assert loader.get().version == "1"
    proxied_registry.publish(iris_artifact_2, name="iris", version="2")
    proxied_registry.promote("iris", "2")
    s3_proxy.mode = "hang"
    clock.now += 61

    served, seconds = _timed(loader.get)

    assert getattr(served, "version", None) == "1"
    assert seconds < 2.0  # one attempt, a 1 s budget (it was 30 s x 3 with botocore)
    # The next check waits a full interval: no request meanwhile.
    before = len(s3_proxy.requests)
    clock.now += 30
    assert loader.get().version == "1"
    assert len(s3_proxy.requests) == before
    # S3 back, the interval over: the promotion arrives.
    s3_proxy.mode = "pass"
    clock.now += 31
    assert loader.get().version == "2"
