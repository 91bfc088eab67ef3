"""X-Ray subsegments, as a daemon on a loopback UDP port receives them: the model load with
its S3 reads nested under it, botocore calls, faults, and nothing when not sampled."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from model_store import Artifact, tracing
from model_store.registry import Registry
from model_store.registry.s3_http import S3HttpStore
from model_store.serving import ModelLoader
from model_store.tracing import DAEMON_ADDRESS, TRACE_HEADER, subsegment, trace_aws_client

ROOT = "1-67891233-abcdef012345678912345678"
PARENT = "53995c3f42cd8ad8"


class Daemon:
    """A UDP socket standing in for the X-Ray daemon."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.address = "{}:{}".format(*self.socket.getsockname())

    def received(self) -> list[dict[str, Any]]:
        documents: list[dict[str, Any]] = []
        while True:
            try:
                datagram = self.socket.recv(65536)
            except TimeoutError:
                return documents
            header, _, body = datagram.partition(b"\n")
            assert json.loads(header) == {"format": "json", "version": 1}
            documents.append(json.loads(body))


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    listening = Daemon()
    monkeypatch.setenv(DAEMON_ADDRESS, listening.address)
    monkeypatch.setenv(TRACE_HEADER, f"Root={ROOT};Parent={PARENT};Sampled=1")
    # The sending side of this test alone, closed after it (a function keeps its own for life).
    sender = tracing._Daemon()
    monkeypatch.setattr(tracing, "_daemon", sender)
    yield listening
    listening.socket.close()
    if sender._socket is not None:
        sender._socket.close()


def test_nothing_is_sent_when_the_invocation_is_not_sampled(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TRACE_HEADER, f"Root={ROOT};Parent={PARENT};Sampled=0")
    with subsegment("score") as trace:
        trace.annotate(rows=1)
    monkeypatch.delenv(TRACE_HEADER)
    with subsegment("score"):
        pass
    assert daemon.received() == []


def test_nothing_is_sent_without_a_daemon(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DAEMON_ADDRESS)
    with subsegment("score"):
        pass
    assert daemon.received() == []


def test_a_subsegment_nests_under_the_open_one_and_the_function_segment(daemon: Daemon) -> None:
    with subsegment("outer", model="iris") as outer, subsegment("inner", namespace="aws"):
        outer.annotate(rows=3)

    inner, sent_outer = daemon.received()  # each is sent when it ends
    assert (sent_outer["name"], inner["name"]) == ("outer", "inner")
    assert {d["trace_id"] for d in (inner, sent_outer)} == {ROOT}
    assert sent_outer["parent_id"] == PARENT
    assert inner["parent_id"] == sent_outer["id"]
    assert inner["namespace"] == "aws"
    assert sent_outer["annotations"] == {"model": "iris", "rows": 3}
    assert sent_outer["start_time"] <= inner["start_time"] <= inner["end_time"]
    assert inner["end_time"] <= sent_outer["end_time"]
    assert all(d["type"] == "subsegment" for d in (inner, sent_outer))


def test_an_exception_marks_a_fault_and_propagates(daemon: Daemon) -> None:
    with pytest.raises(ValueError, match="bad"), subsegment("score"):
        raise ValueError("bad")
    (sent,) = daemon.received()
    assert sent["fault"] is True
    assert sent["cause"]["exceptions"] == [{"type": "ValueError", "message": "bad"}]


def test_a_model_load_shows_its_s3_reads_under_it(
    daemon: Daemon, moto_endpoint: str, iris_artifact: Artifact, tmp_path: Path
) -> None:
    bucket = f"models-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    environ = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": moto_endpoint,
    }
    registry = Registry(S3HttpStore(bucket, environ=environ))
    registry.publish(iris_artifact, name="iris", version="1")
    registry.promote("iris", "1")
    daemon.received()  # the publish's own calls

    loader = ModelLoader(registry, "iris", runtime="sklearn", cache_dir=tmp_path)
    assert loader.get().version == "1"

    sent = daemon.received()
    [load] = [d for d in sent if d["name"] == "model load"]
    assert load["parent_id"] == PARENT
    assert load["annotations"] == {
        "model": "iris",
        "version": "1",
        "runtime": "sklearn",
        "from_cache": False,
    }
    reads = [d for d in sent if d["name"] == "S3"]
    under_load = [d for d in reads if d["parent_id"] == load["id"]]
    assert {d["aws"]["operation"] for d in under_load} == {"GetObject"}
    assert {d["http"]["response"]["status"] for d in under_load} == {200}
    assert any(d["aws"]["key"].endswith("model.joblib") for d in under_load)
    # The alias was resolved before the load: its read hangs off the function segment.
    assert any(d["parent_id"] == PARENT for d in reads)


def test_a_botocore_client_traces_each_call_with_its_status(
    daemon: Daemon, moto_endpoint: str
) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket = f"data-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    trace_aws_client(s3)

    with subsegment("score object"):
        s3.put_object(Bucket=bucket, Key="incoming/a.csv", Body=b"x")
        with pytest.raises(ClientError):
            s3.head_object(Bucket=bucket, Key="missing.csv")

    put, head, outer = daemon.received()
    assert (put["name"], put["namespace"]) == ("S3", "aws")
    assert put["aws"] == {"operation": "PutObject", "bucket_name": bucket, "key": "incoming/a.csv"}
    assert put["http"]["response"]["status"] == 200
    assert head["aws"]["operation"] == "HeadObject"
    assert head["http"]["response"]["status"] == 404
    assert "fault" not in head  # a 404 is the caller's business, not a fault
    assert {put["parent_id"], head["parent_id"]} == {outer["id"]}
