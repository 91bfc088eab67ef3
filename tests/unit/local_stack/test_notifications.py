"""S3 notifications from a watched bucket (a moto server over HTTP) to a function's invoker."""

from __future__ import annotations

import concurrent.futures
import hashlib
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest

from devstack.notifications import S3Notifier
from devstack.rie import Invocation
from devstack.template import S3Trigger

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REGION = "us-east-1"
ERROR = {"errorType": "ValueError", "errorMessage": "bad csv"}


@dataclass
class Recorder:
    """The function: records every attempt, answers with `answer` (a success by default)."""

    answer: Callable[[int], Any] = lambda attempt: {"ok": True}
    calls: list[tuple[str, dict[str, Any], float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, function: str, event: dict[str, Any]) -> Invocation:
        with self.lock:
            self.calls.append((function, event, time.monotonic()))
            attempt = len(self.calls)
        return Invocation(self.answer(attempt), None, [], 0.0)

    def records(self) -> list[dict[str, Any]]:
        return [event["Records"][0] for _, event, _ in self.calls]


@pytest.fixture
def bucket(s3: S3Client) -> str:
    name = f"data-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_notifier(
    s3: S3Client, bucket: str, recorder: Recorder
) -> Iterator[Callable[..., S3Notifier]]:
    made: list[S3Notifier] = []

    def make(
        triggers: list[S3Trigger] | None = None,
        *,
        retry_attempts: dict[str, int] | None = None,
        retry_delay: float = 0.01,
        logs: list[str] | None = None,
    ) -> S3Notifier:
        notifier = S3Notifier(
            s3,
            triggers or [S3Trigger("Batch", bucket, ("s3:ObjectCreated:*",), "incoming/", ".csv")],
            recorder,
            region=REGION,
            retry_attempts=retry_attempts,
            retry_delay=retry_delay,
            on_log=None if logs is None else logs.append,
        )
        made.append(notifier)
        return notifier

    yield make
    for notifier in made:
        notifier.stop()


def settle(notifier: S3Notifier) -> list[Invocation | None]:
    _, pending = concurrent.futures.wait(notifier.delivered, timeout=10)
    assert not pending
    return [future.result() for future in notifier.delivered]


def test_one_event_per_new_version(
    s3: S3Client, bucket: str, recorder: Recorder, make_notifier: Callable[..., S3Notifier]
) -> None:
    notifier = make_notifier()
    notifier.prime()
    versions = [
        s3.put_object(Bucket=bucket, Key="incoming/a.csv", Body=body)["VersionId"]
        for body in (b"x,y\n1,2\n", b"x,y\n3,4\n")
    ]
    assert notifier.poll_once() == 2
    settle(notifier)
    records = recorder.records()
    assert sorted(r["s3"]["object"]["versionId"] for r in records) == sorted(versions)
    assert len(set(versions)) == 2
    assert all(function == "Batch" for function, _, _ in recorder.calls)
    # Nothing new: nothing announced again.
    assert notifier.poll_once() == 0
    s3.put_object(Bucket=bucket, Key="incoming/a.csv", Body=b"x,y\n5,6\n")
    assert notifier.poll_once() == 1
    settle(notifier)
    assert len(recorder.calls) == 3


def test_objects_outside_the_prefix_or_suffix_are_ignored(
    s3: S3Client, bucket: str, recorder: Recorder, make_notifier: Callable[..., S3Notifier]
) -> None:
    notifier = make_notifier()
    notifier.prime()
    for key in ("other/a.csv", "incoming/a.txt", "incoming.csv", "incoming/b.csv"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"1\n")
    assert notifier.poll_once() == 1
    settle(notifier)
    assert [r["s3"]["object"]["key"] for r in recorder.records()] == ["incoming/b.csv"]


def test_objects_there_before_prime_are_not_announced(
    s3: S3Client, bucket: str, recorder: Recorder, make_notifier: Callable[..., S3Notifier]
) -> None:
    s3.put_object(Bucket=bucket, Key="incoming/old.csv", Body=b"1\n")
    notifier = make_notifier()
    notifier.prime()
    s3.put_object(Bucket=bucket, Key="incoming/new.csv", Body=b"2\n")
    assert notifier.poll_once() == 1
    settle(notifier)
    assert [r["s3"]["object"]["key"] for r in recorder.records()] == ["incoming/new.csv"]


@pytest.mark.parametrize(
    ("key", "encoded"),
    [
        ("incoming/a b+c.csv", "incoming/a+b%2Bc.csv"),
        ("incoming/sub dir/é=1.csv", "incoming/sub+dir/%C3%A9%3D1.csv"),
    ],
)
def test_the_key_in_the_event_is_url_encoded(
    s3: S3Client,
    bucket: str,
    recorder: Recorder,
    make_notifier: Callable[..., S3Notifier],
    key: str,
    encoded: str,
) -> None:
    notifier = make_notifier()
    notifier.prime()
    s3.put_object(Bucket=bucket, Key=key, Body=b"1\n")
    assert notifier.poll_once() == 1
    settle(notifier)
    assert [r["s3"]["object"]["key"] for r in recorder.records()] == [encoded]


def test_the_event_has_the_shape_s3_sends(
    s3: S3Client, bucket: str, recorder: Recorder, make_notifier: Callable[..., S3Notifier]
) -> None:
    notifier = make_notifier()
    notifier.prime()
    bodies = [b"sepal_length,sepal_width\n5.1,3.5\n", b"sepal_length\n4.9\n"]
    versions = [
        s3.put_object(Bucket=bucket, Key=f"incoming/{i}.csv", Body=body)["VersionId"]
        for i, body in enumerate(bodies)
    ]
    assert notifier.poll_once() == 2
    settle(notifier)
    by_key = {r["s3"]["object"]["key"]: r for r in recorder.records()}
    for i, body in enumerate(bodies):
        record = by_key[f"incoming/{i}.csv"]
        assert record["eventSource"] == "aws:s3"
        assert record["eventName"] == "ObjectCreated:Put"
        assert record["awsRegion"] == REGION
        assert record["s3"]["bucket"]["name"] == bucket
        assert record["s3"]["bucket"]["arn"] == f"arn:aws:s3:::{bucket}"
        obj = record["s3"]["object"]
        assert obj["size"] == len(body)
        assert obj["eTag"] == hashlib.md5(body).hexdigest()  # no quotes
        assert obj["versionId"] == versions[i]
        assert datetime.strptime(record["eventTime"], "%Y-%m-%dT%H:%M:%S.%fZ")
    sequencers = [r["s3"]["object"]["sequencer"] for r in recorder.records()]
    assert len(set(sequencers)) == 2


def test_a_failing_function_is_retried_then_given_up(
    s3: S3Client, bucket: str, recorder: Recorder, make_notifier: Callable[..., S3Notifier]
) -> None:
    recorder.answer = lambda attempt: ERROR
    logs: list[str] = []
    notifier = make_notifier(retry_attempts={"Batch": 2}, retry_delay=0.05, logs=logs)
    notifier.prime()
    s3.put_object(Bucket=bucket, Key="incoming/bad.csv", Body=b"?\n")
    assert notifier.poll_once() == 1
    assert settle(notifier) == [None]  # given up
    assert len(recorder.calls) == 3  # the first attempt and two retries
    events = [event for _, event, _ in recorder.calls]
    assert all(event == events[0] for event in events)  # the same event each time
    gaps = [b[2] - a[2] for a, b in itertools.pairwise(recorder.calls)]
    assert gaps[0] >= 0.05
    assert gaps[1] >= 0.1  # retry_delay * 2**i
    assert any("gave up after 3 attempts" in line for line in logs)


def test_a_function_that_fails_once_succeeds_on_the_retry(
    s3: S3Client, bucket: str, recorder: Recorder, make_notifier: Callable[..., S3Notifier]
) -> None:
    recorder.answer = lambda attempt: ERROR if attempt == 1 else {"scored": 1}
    notifier = make_notifier(retry_attempts={"Batch": 2})
    notifier.prime()
    s3.put_object(Bucket=bucket, Key="incoming/flaky.csv", Body=b"1\n")
    notifier.poll_once()
    (result,) = settle(notifier)
    assert result is not None
    assert result.payload == {"scored": 1}
    assert len(recorder.calls) == 2


def test_an_invoker_that_raises_is_retried(
    s3: S3Client, bucket: str, make_notifier: Callable[..., S3Notifier], recorder: Recorder
) -> None:
    def broken(attempt: int) -> Any:
        raise RuntimeError("environment failed to start")

    recorder.answer = broken
    notifier = make_notifier(retry_attempts={"Batch": 1})
    notifier.prime()
    s3.put_object(Bucket=bucket, Key="incoming/x.csv", Body=b"1\n")
    notifier.poll_once()
    assert settle(notifier) == [None]
    assert len(recorder.calls) == 2


@pytest.mark.parametrize(("retry_attempts", "attempts"), [({"Batch": 0}, 1), (None, 3)])
def test_retry_attempts_zero_is_one_attempt_and_the_default_is_two_retries(
    s3: S3Client,
    bucket: str,
    recorder: Recorder,
    make_notifier: Callable[..., S3Notifier],
    retry_attempts: dict[str, int] | None,
    attempts: int,
) -> None:
    recorder.answer = lambda attempt: ERROR
    notifier = make_notifier(retry_attempts=retry_attempts)
    notifier.prime()
    s3.put_object(Bucket=bucket, Key="incoming/bad.csv", Body=b"?\n")
    notifier.poll_once()
    assert settle(notifier) == [None]
    assert len(recorder.calls) == attempts


def test_stop_ends_pending_retries(
    s3: S3Client, bucket: str, recorder: Recorder, make_notifier: Callable[..., S3Notifier]
) -> None:
    recorder.answer = lambda attempt: ERROR
    notifier = make_notifier(retry_attempts={"Batch": 2}, retry_delay=30)
    notifier.prime()
    s3.put_object(Bucket=bucket, Key="incoming/bad.csv", Body=b"?\n")
    notifier.poll_once()
    deadline = time.monotonic() + 5
    while not recorder.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    notifier.stop()
    assert settle(notifier) == [None]
    assert time.monotonic() - started < 5  # not the 30 s retry delay
    assert len(recorder.calls) == 1


def test_two_triggers_on_one_bucket_each_get_their_objects(
    s3: S3Client, bucket: str, recorder: Recorder, make_notifier: Callable[..., S3Notifier]
) -> None:
    notifier = make_notifier(
        [
            S3Trigger("Csv", bucket, ("s3:ObjectCreated:*",), "incoming/", ".csv"),
            S3Trigger("Json", bucket, ("s3:ObjectCreated:*",), "incoming/", ".json"),
        ]
    )
    notifier.prime()
    s3.put_object(Bucket=bucket, Key="incoming/a.csv", Body=b"1\n")
    s3.put_object(Bucket=bucket, Key="incoming/b.json", Body=b"{}")
    notifier.poll_once()
    settle(notifier)
    delivered = sorted(
        (function, e["Records"][0]["s3"]["object"]["key"]) for function, e, _ in recorder.calls
    )
    assert delivered == [("Csv", "incoming/a.csv"), ("Json", "incoming/b.json")]


def test_the_notifier_never_lists_the_bucket(
    s3: S3Client, bucket: str, make_notifier: Callable[..., S3Notifier]
) -> None:
    # moto 5.2.5 leaks the listed objects' bytes on every ListObjectVersions call: a long
    # `make local` ran out of memory from the notifier's polling alone.
    operations: list[str] = []
    s3.meta.events.register(
        "before-call.s3.*", lambda model, **_: operations.append(model.name), unique_id="ops"
    )
    try:
        notifier = make_notifier()
        notifier.prime()
        for index in range(3):
            s3.put_object(Bucket=bucket, Key=f"incoming/{index}.csv", Body=b"a\n1\n")
            notifier.poll_once()
        time.sleep(0.3)
        notifier.poll_once()
    finally:
        s3.meta.events.unregister("before-call.s3.*", unique_id="ops")
    assert len(settle(notifier)) == 3
    assert not [name for name in operations if name.startswith("List")], operations
