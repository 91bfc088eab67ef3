"""Batch scoring of S3 objects: ``incoming/<path>.csv`` to predictions, errors, report.

Outputs for ``<input_prefix><path>.csv`` go to ``predictions/<path>.csv``,
``errors/<path>.csv`` and ``reports/<path>.json`` (with its page for people,
``reports/<path>.html``): other prefixes, so writing them never triggers the function
again. A repeated event for an object version already reported does no work.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from model_store.aws_errors import describe_error, is_not_found
from model_store.batch.engine import DEFAULT_CHUNK_ROWS, Refused, score_stream
from model_store.batch.handover import ShardedObject, Sharding, execution_name
from model_store.batch.inputs import (
    ACCEPTED,
    DEFAULT_MAX_GZIP_BYTES,
    csv_text,
    input_stem,
    is_gzip,
    too_large,
)
from model_store.batch.report import (
    DEFAULT_DRIFT_THRESHOLD,
    BatchReport,
    ModelRef,
    SourceInfo,
    Status,
)
from model_store.batch.sinks import S3MultipartSink
from model_store.exceptions import DataBucketError, ModelStoreError
from model_store.gate import LoadedModel

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutputLayout:
    input_prefix: str = "incoming/"
    predictions_prefix: str = "predictions/"
    errors_prefix: str = "errors/"
    reports_prefix: str = "reports/"

    def keys(self, key: str) -> dict[str, str]:
        relative = key[len(self.input_prefix) :] if key.startswith(self.input_prefix) else key
        stem = input_stem(relative)
        if stem is None:
            stem = relative
        return {
            "predictions": f"{self.predictions_prefix}{stem}.csv",
            "errors": f"{self.errors_prefix}{stem}.csv",
            "report": f"{self.reports_prefix}{stem}.json",
        }


@dataclass(frozen=True)
class Outcome:
    report: BatchReport
    duplicate: bool


def score_s3_object(
    client: S3Client,
    bucket: str,
    key: str,
    model: Callable[[], LoadedModel],
    *,
    version_id: str | None = None,
    layout: OutputLayout | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    drift_threshold: float = DEFAULT_DRIFT_THRESHOLD,
    neutralise_formulas: bool = True,
    max_gzip_bytes: int = DEFAULT_MAX_GZIP_BYTES,
    sharding: Sharding | None = None,
) -> Outcome:
    """Score one object: refuse what cannot be, skip what is done or superseded, hand a
    file too large for one invocation to SHARDING, score the rest. Rejected files get a
    report; other failures raise after one."""
    if key.endswith("/"):
        # A "folder" the S3 console makes: not a file anybody dropped.
        log.info("s3://%s/%s is a folder marker; nothing to score", bucket, key)
        folder = BatchReport(
            status="rejected",
            reason="a folder marker, not a file",
            source=SourceInfo(location=f"s3://{bucket}/{key}", version_id=version_id),
            started_at=datetime.now(UTC),
        )
        return Outcome(folder, duplicate=True)
    run = _ObjectRun(client, bucket, key, version_id, (layout or OutputLayout()).keys(key))
    refused = run.refusal()
    if refused is not None:
        return Outcome(refused, duplicate=False)

    size = run.head()
    previous = run.previous_report()
    done = previous is not None and previous.status in ("succeeded", "rejected")
    if done and previous is not None and run.is_source_of(previous):
        log.info("%s was already scored (%s); nothing to do", run.source.location, previous.status)
        return Outcome(previous, duplicate=True)
    if run.superseded():
        # A late (re)delivery for a version that has since been overwritten or deleted:
        # the outputs belong to what replaced it, whose own event scores it.
        log.info("%s version %s is superseded by a newer upload; skipped", key, version_id)
        return Outcome(previous or run.superseded_report(), duplicate=True)
    if is_gzip(key) and size > max_gzip_bytes:
        return Outcome(run.report("rejected", too_large(size, max_gzip_bytes)), duplicate=False)
    if sharding is not None and not is_gzip(key) and size > sharding.above_bytes:
        reason = (
            f"{size:,} bytes is over the {sharding.above_bytes:,}-byte limit for one "
            "invocation: scored in shards"
        )
        return run.hand_over(sharding.start, size, reason, previous)

    try:
        loaded = model()
    except ModelStoreError as exc:
        run.report("failed", f"no model: {exc}")
        raise
    report = run.score(
        loaded,
        chunk_rows=chunk_rows,
        drift_threshold=drift_threshold,
        neutralise_formulas=neutralise_formulas,
    )
    return Outcome(report, duplicate=False)


def rescore_s3_object(
    client: S3Client,
    bucket: str,
    key: str,
    start: Callable[[str, dict[str, Any]], str],
    *,
    version_id: str | None = None,
    layout: OutputLayout | None = None,
) -> BatchReport:
    """Score an object in shards again, deliberately, whatever its size: START (as
    Sharding's) runs it under a new execution name (a name is not reused for 90 days),
    its "running" report in place of the last one. An object that cannot be read gets no
    report: nothing was asked of it but this rerun."""
    run = _ObjectRun(client, bucket, key, version_id, (layout or OutputLayout()).keys(key))
    size = run.head(report_failure=False)
    attempt = f"rerun-{run.started_at:%Y%m%dT%H%M%S}"
    reason = "scored in shards again, on request"
    return run.hand_over(start, size, reason, None, attempt=attempt).report


class _ObjectRun:
    """One object on its way through: where its outputs go, what S3 says about it, and
    the report that records the run."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        key: str,
        version_id: str | None,
        keys: dict[str, str],
    ) -> None:
        self.client, self.bucket, self.key, self.keys = client, bucket, key, keys
        self.source = SourceInfo(location=f"s3://{bucket}/{key}", version_id=version_id)
        self.started_at = datetime.now(UTC)
        self._started = time.perf_counter()
        self._etag = ""

    def report(self, status: Status, reason: str, *, model: ModelRef | None = None) -> BatchReport:
        """Write and return the run's report (a rejected or failed one)."""
        built = BatchReport(
            status=status,
            reason=reason,
            source=self.source,
            model=model,
            started_at=self.started_at,
            duration_seconds=self._elapsed(),
        )
        return self._write(built)

    def refusal(self) -> BatchReport | None:
        """The rejected report of an object whose name cannot be scored, or None."""
        unusable = _unusable_output_keys(self.key, self.keys)
        if unusable:
            # Not about this attempt: retrying would fail alike, so the file is refused now.
            if len(self.keys["report"].encode()) > MAX_KEY_BYTES:  # longer custom prefixes
                log.warning("%s is refused and gets no report: %s", self.source.location, unusable)
                return BatchReport(
                    status="rejected",
                    reason=unusable,
                    source=self.source,
                    started_at=self.started_at,
                )
            return self.report("rejected", unusable)
        if input_stem(self.key) is None:
            return self.report("rejected", f"{ACCEPTED}: {self.key.rsplit('/', 1)[-1]}")
        return None

    def head(self, *, report_failure: bool = True) -> int:
        """Pin the object the run scores (its ETag and version); its size in bytes."""
        version_id = self.source.version_id
        try:
            head = (
                self.client.head_object(Bucket=self.bucket, Key=self.key, VersionId=version_id)
                if version_id
                else self.client.head_object(Bucket=self.bucket, Key=self.key)
            )
        except Exception as exc:
            if not report_failure:
                raise self._storage_failed("HeadObject", self.key, exc) from exc
            raise self._unreadable(exc) from exc
        self._etag = head["ETag"]
        self.source = SourceInfo(
            location=self.source.location,
            etag=head["ETag"].strip('"'),
            version_id=head.get("VersionId") or version_id,
        )
        return head["ContentLength"]

    def previous_report(self) -> BatchReport | None:
        """The report already under the report key, if one is there and readable."""
        from botocore.exceptions import BotoCoreError, ClientError

        key = self.keys["report"]
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise self._storage_failed("GetObject", key, exc) from exc
        except BotoCoreError as exc:
            raise self._storage_failed("GetObject", key, exc) from exc
        try:
            return BatchReport.model_validate_json(body)
        except ValidationError:
            return None  # unreadable: score again and replace it

    def is_source_of(self, report: BatchReport) -> bool:
        """Whether REPORT is about the very object version this run pinned."""
        if report.source.version_id and self.source.version_id:
            return report.source.version_id == self.source.version_id
        return report.source.etag == self.source.etag

    def superseded(self) -> bool:
        """Whether the event's version is no longer the key's current one."""
        if self.source.version_id is None:
            return False
        from botocore.exceptions import ClientError

        try:
            latest = self.client.head_object(Bucket=self.bucket, Key=self.key).get("VersionId")
        except ClientError as exc:
            if not is_not_found(exc, delete_marker=True):
                raise self._unreadable(exc) from exc
            latest = None  # deleted since: a delete marker on top
        except Exception as exc:
            raise self._unreadable(exc) from exc
        return latest != self.source.version_id

    def hand_over(
        self,
        start: Callable[[str, dict[str, Any]], str],
        size: int,
        reason: str,
        previous: BatchReport | None,
        *,
        attempt: str = "",
    ) -> Outcome:
        """Start the sharded run of this object with START (Sharding.start), once: the
        execution's name derives from the object version, and a repeated event finds it
        running. ATTEMPT names a deliberate rerun (see execution_name)."""
        name = execution_name(
            self.bucket, self.key, self.source.version_id, self.source.etag, attempt=attempt
        )
        running = (
            previous is not None and previous.status == "running" and self.is_source_of(previous)
        )
        # The report is written before the run starts, so that whatever the run writes
        # comes after it; a repeated event (or a retry after a failed start) leaves it be.
        if not running:
            self._write(self._running(reason, name))
        target = ShardedObject(
            bucket=self.bucket,
            key=self.key,
            version_id=self.source.version_id,
            etag=self.source.etag,
            size=size,
            outputs=self.keys,
            started_at=self.started_at,
        )
        used = start(name, {"object": target.model_dump(mode="json")})
        if used != name:  # NAME's run was over (the outputs deleted since, say): a new one
            return Outcome(self._write(self._running(reason, used)), duplicate=False)
        return Outcome(previous if running and previous else self._running(reason, name), running)

    def _running(self, reason: str, execution: str) -> BatchReport:
        return BatchReport(
            status="running",
            reason=reason,
            source=self.source,
            started_at=self.started_at,
            execution=execution,
        )

    def superseded_report(self) -> BatchReport:
        version_id = self.source.version_id
        return BatchReport(
            status="rejected",
            reason=f"version {version_id} was superseded by a newer upload of {self.key}",
            source=self.source,
            started_at=self.started_at,
        )

    def score(
        self,
        loaded: LoadedModel,
        *,
        chunk_rows: int,
        drift_threshold: float,
        neutralise_formulas: bool,
    ) -> BatchReport:
        """Stream the pinned version through the engine into the outputs; the report."""
        model = ModelRef(name=loaded.name, version=loaded.version)
        gzipped = is_gzip(self.key)
        try:
            # Read exactly the version the report names, even if the key is overwritten.
            version_id = self.source.version_id
            get = (
                self.client.get_object(Bucket=self.bucket, Key=self.key, VersionId=version_id)
                if version_id
                else self.client.get_object(Bucket=self.bucket, Key=self.key, IfMatch=self._etag)
            )
            body: Any = get["Body"]  # a raw binary stream, decoded (and unzipped) as read
            scored = score_stream(
                csv_text(body, gzipped=gzipped),
                loaded,
                S3MultipartSink(self.client, self.bucket, self.keys["predictions"]),
                S3MultipartSink(self.client, self.bucket, self.keys["errors"]),
                gzipped=gzipped,
                chunk_rows=chunk_rows,
                drift_threshold=drift_threshold,
                neutralise_formulas=neutralise_formulas,
            )
        except Exception as exc:
            self.report("failed", f"scoring stopped: {describe_error(exc)}", model=model)
            raise
        if isinstance(scored, Refused):
            return self.report("rejected", scored.reason, model=model)
        outputs = {
            name: f"s3://{self.bucket}/{key}" for name, key in self.keys.items() if name != "report"
        }
        done = scored.report(
            source=self.source,
            started_at=self.started_at,
            duration=self._elapsed(),
            model=model,
            outputs=outputs,
        )
        return self._write(done)

    def _elapsed(self) -> float:
        return time.perf_counter() - self._started

    def _write(self, report: BatchReport) -> BatchReport:
        return write_report(self.client, self.bucket, self.keys["report"], report)

    def _unreadable(self, exc: BaseException) -> DataBucketError:
        """After a failed report: the object could not be read."""
        self.report("failed", f"cannot read the object: {describe_error(exc)}")
        return self._storage_failed("HeadObject", self.key, exc)

    def _storage_failed(self, op: str, key: str, exc: BaseException) -> DataBucketError:
        return DataBucketError(f"S3 {op} s3://{self.bucket}/{key} failed: {describe_error(exc)}")


MAX_KEY_BYTES = 1024  # S3's limit on a key, in UTF-8


def _unusable_output_keys(key: str, keys: dict[str, str]) -> str:
    """Why the outputs of KEY cannot be written, or "" when they can."""
    if any(unicodedata.category(c) == "Cc" for c in key):
        return (
            "the object's key has control characters; outputs are not written under such "
            "names (rename the file and upload it again)"
        )
    too_long = [
        f"{name} ({len(k.encode())} bytes)"
        for name, k in keys.items()
        if len(k.encode()) > MAX_KEY_BYTES
    ]
    if too_long:
        return (
            f"the output keys would be longer than S3's {MAX_KEY_BYTES} bytes: "
            f"{', '.join(too_long)}; use a shorter name"
        )
    return ""


def write_report(client: S3Client, bucket: str, key: str, report: BatchReport) -> BatchReport:
    """REPORT as JSON at KEY, with its page for people beside it; REPORT."""
    try:
        _put(client, bucket, key, report.to_json(), "application/json")
    except Exception as exc:
        raise DataBucketError(
            f"S3 PutObject s3://{bucket}/{key} failed: {describe_error(exc)}"
        ) from exc
    _put_html(client, bucket, key, report)
    return report


def _put(client: S3Client, bucket: str, key: str, body: bytes, content_type: str) -> None:
    client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)


def _put_html(client: S3Client, bucket: str, json_key: str, report: BatchReport) -> None:
    """The report's page for people beside its JSON (same key, .html).

    The JSON is the record (and what marks an object done), so a page that cannot be
    written is logged, never a reason to fail or retry the run.
    """
    from model_store.batch.html_report import render_html  # batch reports only, on use

    key = json_key.removesuffix(".json") + ".html"
    try:
        page = render_html(report).encode()
        _put(client, bucket, key, page, "text/html; charset=utf-8")
    except Exception:
        log.warning("the report page s3://%s/%s was not written", bucket, key, exc_info=True)
