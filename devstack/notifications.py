"""S3 event notifications to functions: what S3 sends when an object is created.

moto stores objects but delivers no notifications to local processes, so the bucket is
watched instead: every new object version under a trigger's prefix and suffix becomes one
ObjectCreated event of the real shape (URL-encoded key, ETag, version id, sequencer),
delivered asynchronously with the retries the function's EventInvokeConfig allows.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

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
    ) -> None:
        self._s3 = s3
        self._triggers = triggers
        self._invoke = invoke
        self._region = region
        self._interval = interval
        self._retry_attempts = dict(retry_attempts or {})
        self._retry_delay = retry_delay
        self._on_log = on_log or (lambda line: None)
        # Per trigger: two triggers on one bucket each get the objects matching their filter.
        self._seen: set[tuple[int, str, str, str]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._deliveries = concurrent.futures.ThreadPoolExecutor(
            max_workers=8, thread_name_prefix="s3-notification"
        )
        # The latest deliveries (a long-running stack must not keep every one).
        self.delivered: collections.deque[concurrent.futures.Future[Invocation | None]] = (
            collections.deque(maxlen=1000)
        )

    def _versions(self, trigger: S3Trigger) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        paginator = self._s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=trigger.bucket, Prefix=trigger.prefix):
            found.extend(dict(v) for v in page.get("Versions", []))
        return sorted(found, key=lambda v: v["LastModified"])

    @staticmethod
    def _identity(obj: dict[str, Any]) -> tuple[str, str, str]:
        # Unversioned buckets have the version "null"; a new upload changes the ETag/time.
        version = str(obj.get("VersionId") or "null")
        if version == "null":
            version = f"{obj.get('ETag')}@{obj.get('LastModified')}"
        return obj["Key"], version, str(obj.get("ETag"))

    def prime(self) -> None:
        """Objects already there were announced before this stack started."""
        for index, trigger in enumerate(self._triggers):
            self._seen.update((index, *self._identity(v)) for v in self._versions(trigger))

    def poll_once(self) -> int:
        announced = 0
        for index, trigger in enumerate(self._triggers):
            for obj in self._versions(trigger):
                identity = (index, *self._identity(obj))
                if identity in self._seen:
                    continue
                self._seen.add(identity)
                if not trigger.matches("s3:ObjectCreated:Put", obj["Key"]):
                    continue
                event = object_created_event(
                    trigger,
                    obj,
                    region=self._region,
                    configuration_id=f"{trigger.function}-{index}",
                )
                self.delivered.append(self._deliveries.submit(self._deliver, trigger, event))
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
            except Exception as exc:  # S3 briefly unreachable: try again next round
                self._on_log(f"watching S3 failed: {exc}")

    def start(self) -> None:
        self.prime()
        self._thread = threading.Thread(target=self._run, name="s3-notifier", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._deliveries.shutdown(wait=False, cancel_futures=True)
