"""S3 event notifications to functions: what S3 sends when an object is created.

moto stores objects and emits S3's events to its own EventBridge, but invokes no local
process. So the notifier turns on the buckets' EventBridge notifications, routes them with
a rule to an SQS queue of its own (all inside moto), and polls that queue: every object
version created under a trigger's prefix and suffix becomes one ObjectCreated event of the
real shape (URL-encoded key, ETag, version id, sequencer), delivered asynchronously with
the retries the function's EventInvokeConfig allows.

It never lists the bucket: moto 5.2.5 leaks the listed objects' bytes on every
ListObjectVersions call (megabytes a call), which ran a long `make local` out of memory.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from devstack.rie import Invocation
from devstack.template import S3Trigger

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

Invoker = Callable[[str, dict[str, Any]], Invocation]
_sequencer = itertools.count(1)


def object_created_event(
    trigger: S3Trigger,
    obj: dict[str, Any],
    *,
    region: str,
    configuration_id: str,
) -> dict[str, Any]:
    """One ObjectCreated record, as S3 sends it to Lambda."""
    etag = str(obj.get("ETag", "")).strip('"')
    # A multipart upload's ETag is "<md5>-<parts>"; S3 names that event differently.
    name = "ObjectCreated:CompleteMultipartUpload" if "-" in etag else "ObjectCreated:Put"
    modified: datetime = obj.get("LastModified") or datetime.now(UTC)
    s3_object: dict[str, Any] = {
        "key": quote_plus(obj["Key"], safe="/"),
        "size": obj.get("Size", 0),
        "eTag": etag,
        "sequencer": f"{int(time.time() * 1000):012X}{next(_sequencer):06X}",
    }
    version = obj.get("VersionId")
    if version and version != "null":
        s3_object["versionId"] = version
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": modified.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.")
                + f"{modified.microsecond // 1000:03d}Z",
                "eventName": name,
                "userIdentity": {"principalId": "AWS:LOCAL"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {
                    "x-amz-request-id": secrets.token_hex(8).upper(),
                    "x-amz-id-2": secrets.token_urlsafe(48),
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": configuration_id,
                    "bucket": {
                        "name": trigger.bucket,
                        "ownerIdentity": {"principalId": "LOCAL"},
                        "arn": f"arn:aws:s3:::{trigger.bucket}",
                    },
                    "object": s3_object,
                },
            }
        ]
    }


# Calls to the local moto: one attempt, seconds at most, so a stopped moto stalls nothing.
POLL_CONFIG = Config(
    connect_timeout=1.0, read_timeout=2.0, retries={"total_max_attempts": 1, "mode": "standard"}
)


class S3Notifier:
    """Watches the triggers' buckets and invokes their functions once per new version."""

    def __init__(
        self,
        s3: S3Client,
        triggers: list[S3Trigger],
        invoke: Invoker,
        *,
        region: str,
        interval: float = 0.5,
        retry_attempts: Mapping[str, int] | None = None,
        retry_delay: float = 1.0,
        on_log: Callable[[str], None] | None = None,
        sqs: Any = None,
        events: Any = None,
    ) -> None:
        self._s3 = s3
        self._triggers = triggers
        self._invoke = invoke
        self._region = region
        self._interval = interval
        self._retry_attempts = dict(retry_attempts or {})
        self._retry_delay = retry_delay
        self._on_log = on_log or (lambda line: None)
        # SQS and EventBridge clients: the S3 client's endpoint, short timeouts.
        self._sqs = sqs or self._sibling("sqs")
        self._events = events or self._sibling("events")
        self._name = f"devstack-s3-events-{secrets.token_hex(6)}"
        self._queue_url: str | None = None
        self._rule: str | None = None
        self._failing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._deliveries = concurrent.futures.ThreadPoolExecutor(
            max_workers=8, thread_name_prefix="s3-notification"
        )
        # The latest deliveries (a long-running stack must not keep every one).
        self.delivered: collections.deque[concurrent.futures.Future[Invocation | None]] = (
            collections.deque(maxlen=1000)
        )

    def _sibling(self, service: str) -> Any:
        meta = self._s3.meta
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=meta.endpoint_url,
            region_name=meta.region_name,
            config=POLL_CONFIG,
        )

    def prime(self) -> None:
        """Subscribe to the buckets' ObjectCreated events: objects already there were
        announced before this stack started, those created from now on will be."""
        buckets = sorted({trigger.bucket for trigger in self._triggers})
        for bucket in buckets:
            # Keep whatever else the bucket notifies; add EventBridge.
            current: Any = dict(self._s3.get_bucket_notification_configuration(Bucket=bucket))
            current.pop("ResponseMetadata", None)
            current["EventBridgeConfiguration"] = {}
            self._s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration=current
            )
        self._queue_url = self._sqs.create_queue(QueueName=self._name)["QueueUrl"]
        queue_arn = self._sqs.get_queue_attributes(
            QueueUrl=self._queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        pattern = {
            "source": ["aws.s3"],
            "detail-type": ["Object Created"],
            "detail": {"bucket": {"name": buckets}},
        }
        self._events.put_rule(Name=self._name, EventPattern=json.dumps(pattern), State="ENABLED")
        self._rule = self._name
        self._events.put_targets(Rule=self._name, Targets=[{"Id": "notifier", "Arn": queue_arn}])

    def _receive(self) -> list[dict[str, Any]]:
        """The events waiting in the queue (removed from it: delivery retries are ours)."""
        if self._queue_url is None:
            return []
        received: list[dict[str, Any]] = []
        while True:
            messages = self._sqs.receive_message(
                QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return received
            received.extend(json.loads(message["Body"]) for message in messages)
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": message["ReceiptHandle"]}
                    for i, message in enumerate(messages)
                ],
            )

    @staticmethod
    def _object(event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The bucket of an EventBridge "Object Created" event, and its object as S3 lists it."""
        detail = event["detail"]
        obj = detail["object"]
        try:
            modified = datetime.strptime(str(event.get("time")), "%Y-%m-%dT%H:%M:%SZ")
            modified = modified.replace(tzinfo=UTC)
        except ValueError:
            modified = datetime.now(UTC)
        return detail["bucket"]["name"], {
            "Key": obj["key"],
            "Size": obj.get("size", 0),
            "ETag": obj.get("eTag", ""),
            "VersionId": obj.get("version-id"),
            "LastModified": modified,
        }

    def poll_once(self) -> int:
        announced = 0
        for event in self._receive():
            bucket, obj = self._object(event)
            for index, trigger in enumerate(self._triggers):
                if trigger.bucket != bucket:
                    continue
                if not trigger.matches("s3:ObjectCreated:Put", obj["Key"]):
                    continue
                record = object_created_event(
                    trigger,
                    obj,
                    region=self._region,
                    configuration_id=f"{trigger.function}-{index}",
                )
                self.delivered.append(self._deliveries.submit(self._deliver, trigger, record))
                announced += 1
        return announced

    def _deliver(self, trigger: S3Trigger, event: dict[str, Any]) -> Invocation | None:
        record = event["Records"][0]["s3"]
        target = f"s3://{trigger.bucket}/{record['object']['key']}"
        # Lambda retries a failed asynchronous event twice by default, after 1 and 2 minutes;
        # locally the same number of retries, after seconds.
        retries = self._retry_attempts.get(trigger.function, 2)
        delays = [0.0, *(self._retry_delay * 2**i for i in range(retries))]
        for attempt, delay in enumerate(delays, start=1):
            if self._stop.wait(delay):
                return None
            try:
                result = self._invoke(trigger.function, event)
            except Exception as exc:  # the environment failed to start or run
                self._on_log(f"{target} -> {trigger.function} attempt {attempt} failed: {exc}")
                continue
            if not result.failed:
                self._on_log(f"{target} -> {trigger.function}: done (attempt {attempt})")
                return result
            error = f"{result.payload.get('errorType')}: {result.payload.get('errorMessage')}"
            self._on_log(f"{target} -> {trigger.function} attempt {attempt} failed: {error}")
        self._on_log(f"{target}: gave up after {len(delays)} attempts (on AWS: to the DLQ)")
        return None

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.poll_once()
            except (BotoCoreError, ClientError, ValueError, KeyError) as exc:
                # moto briefly unreachable: try again next round; say so once.
                if not self._failing:
                    self._on_log(f"watching S3 failed: {type(exc).__name__}: {exc}")
                self._failing = True
            else:
                if self._failing:
                    self._on_log("watching S3 again")
                self._failing = False

    def start(self) -> None:
        self.prime()
        self._thread = threading.Thread(target=self._run, name="s3-notifier", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._deliveries.shutdown(wait=False, cancel_futures=True)
        self._unsubscribe()

    def _unsubscribe(self) -> None:
        """Remove the rule and the queue (best effort: moto may be gone or stopped)."""
        with contextlib.suppress(BotoCoreError, ClientError):
            if self._rule is not None:
                self._events.remove_targets(Rule=self._rule, Ids=["notifier"])
                self._events.delete_rule(Name=self._rule)
                self._rule = None
            if self._queue_url is not None:
                self._sqs.delete_queue(QueueUrl=self._queue_url)
                self._queue_url = None
