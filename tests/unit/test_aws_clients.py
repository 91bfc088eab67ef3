"""model_store's AWS clients: one botocore session per process, safe to use from threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from model_store import aws


@pytest.fixture
def fresh_session() -> None:
    """Each test starts as a new process would: no session yet."""
    aws._session.cache_clear()


@pytest.mark.usefixtures("fresh_session")
def test_clients_share_one_session_that_is_made_once() -> None:
    first, second = aws.s3_client(), aws.kms_client()

    assert aws._session.cache_info().misses == 1
    assert first.meta.region_name == second.meta.region_name == "us-east-1"


@pytest.mark.usefixtures("fresh_session")
def test_clients_made_from_many_threads_at_once_are_all_whole() -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        clients = list(pool.map(lambda _: aws.s3_client(), range(64)))

    assert aws._session.cache_info().misses == 1
    assert all(callable(getattr(c, "head_object", None)) for c in clients)
    assert len({id(c) for c in clients}) == 64  # a client each, from the one session
