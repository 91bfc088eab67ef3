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

from model_store.batch.engine import DEFAULT_CHUNK_ROWS, FileRejected, score_text
from model_store.batch.inputs import (
    ACCEPTED,
    DEFAULT_MAX_GZIP_BYTES,
    GZIP_ERRORS,
    csv_text,
    input_stem,
    is_gzip,
    too_large,
)
from model_store.batch.report import BatchReport, SourceInfo
from model_store.batch.sinks import S3MultipartSink
from model_store.exceptions import ModelStoreError, RegistryError
from model_store.loading import LoadedModel

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
    drift_threshold: float = 0.2,
    neutralise_formulas: bool = True,
    max_gzip_bytes: int = DEFAULT_MAX_GZIP_BYTES,
) -> Outcome:
    """Score one object. Rejected files get a report; other failures raise after one."""
    layout = layout or OutputLayout()
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
    keys = layout.keys(key)
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    source = SourceInfo(location=f"s3://{bucket}/{key}", version_id=version_id)
    outputs = {name: f"s3://{bucket}/{k}" for name, k in keys.items() if name != "report"}

    def report(**fields: object) -> BatchReport:
        duration = time.perf_counter() - started
        built = BatchReport.model_validate(
            {"source": source, "started_at": started_at, "duration_seconds": duration, **fields}
        )
        _put(client, bucket, keys["report"], built.to_json(), "application/json")
        _put_html(client, bucket, keys["report"], built)
        return built

    unusable = _unusable_output_keys(key, keys)
    if unusable:
        # Not about this attempt: retrying would fail alike, so the file is refused now.
        if len(keys["report"].encode()) > MAX_KEY_BYTES:  # only with longer custom prefixes
            log.warning("%s is refused and gets no report: %s", source.location, unusable)
            refused = BatchReport(
                status="rejected", reason=unusable, source=source, started_at=started_at
            )
            return Outcome(refused, duplicate=False)
        return Outcome(report(status="rejected", reason=unusable), duplicate=False)
    if input_stem(key) is None:
        name = key.rsplit("/", 1)[-1]
        return Outcome(report(status="rejected", reason=f"{ACCEPTED}: {name}"), duplicate=False)

    try:
        head = (
            client.head_object(Bucket=bucket, Key=key, VersionId=version_id)
            if version_id
            else client.head_object(Bucket=bucket, Key=key)
        )
    except Exception as exc:
        failed = report(status="failed", reason=f"cannot read the object: {_describe(exc)}")
        raise RegistryError(failed.reason or "") from exc
    source = SourceInfo(
        location=source.location,
        etag=head["ETag"].strip('"'),
        version_id=head.get("VersionId") or version_id,
    )
    previous = _previous_report(client, bucket, keys["report"])
    if (
        previous is not None
        and previous.status != "failed"
        and _same_object(previous.source, source)
    ):
        log.info("%s was already scored (%s); nothing to do", source.location, previous.status)
        return Outcome(previous, duplicate=True)
    try:
        latest = _latest_version(client, bucket, key) if version_id else None
    except Exception as exc:
        failed = report(status="failed", reason=f"cannot read the object: {_describe(exc)}")
        raise RegistryError(failed.reason or "") from exc
    if version_id and latest != version_id:
        # A late (re)delivery for a version that has since been overwritten or deleted:
        # the outputs belong to what replaced it, whose own event scores it.
        log.info("%s version %s is superseded by a newer upload; skipped", key, version_id)
        skipped = BatchReport(
            status="rejected",
            reason=f"version {version_id} was superseded by a newer upload of {key}",
            source=source,
            started_at=started_at,
        )
        return Outcome(previous or skipped, duplicate=True)

    gzipped = is_gzip(key)
    if gzipped and head["ContentLength"] > max_gzip_bytes:
        reason = too_large(head["ContentLength"], max_gzip_bytes)
        return Outcome(report(status="rejected", reason=reason), duplicate=False)

    try:
        loaded = model()
    except ModelStoreError as exc:
        report(status="failed", reason=f"no model: {exc}")
        raise

    model_info = {"name": loaded.name, "version": loaded.version}
    predictions = S3MultipartSink(client, bucket, keys["predictions"])
    errors = S3MultipartSink(client, bucket, keys["errors"])
    try:
        # Read exactly the version the report names, even if the key is overwritten meanwhile.
        get = (
            client.get_object(Bucket=bucket, Key=key, VersionId=source.version_id)
            if source.version_id
            else client.get_object(Bucket=bucket, Key=key, IfMatch=head["ETag"])
        )
        body: Any = get["Body"]  # a raw binary stream, decoded (and unzipped) as it is read
        text = csv_text(body, gzipped=gzipped)
        tally = score_text(
            text,
            loaded,
            predictions,
            errors,
            chunk_rows=chunk_rows,
            drift_threshold=drift_threshold,
            neutralise_formulas=neutralise_formulas,
        )
        predictions.commit()
        errors.commit()
    except FileRejected as exc:
        predictions.abort()
        errors.abort()
        return Outcome(
            report(status="rejected", reason=str(exc), model=model_info), duplicate=False
        )
    except Exception as exc:
        predictions.abort()
        errors.abort()
        if gzipped and isinstance(exc, GZIP_ERRORS):
            # The bytes will not change on a retry: refused now, not sent to the DLQ.
            reason = f"not a readable gzip file ({type(exc).__name__}: {exc})"
            return Outcome(
                report(status="rejected", reason=reason, model=model_info), duplicate=False
            )
        report(status="failed", reason=f"scoring stopped: {_describe(exc)}", model=model_info)
        raise
    fields = tally.report_fields(time.perf_counter() - started)
    done = report(status="succeeded", model=model_info, outputs=outputs, **fields)
    return Outcome(done, duplicate=False)


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


def _latest_version(client: S3Client, bucket: str, key: str) -> str | None:
    """The key's current version; None once it was deleted (a delete marker on top)."""
    from botocore.exceptions import ClientError

    try:
        return client.head_object(Bucket=bucket, Key=key).get("VersionId")
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) in {"404", "405", "NoSuchKey"}:
            return None
        raise


def _same_object(a: SourceInfo, b: SourceInfo) -> bool:
    if a.version_id and b.version_id:
        return a.version_id == b.version_id
    return a.etag == b.etag


def _previous_report(client: S3Client, bucket: str, key: str) -> BatchReport | None:
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey:
        return None
    try:
        return BatchReport.model_validate_json(body)
    except ValidationError:
        return None  # unreadable: score again and replace it


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


def _describe(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        error = response["Error"]
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"
