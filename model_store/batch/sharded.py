"""Files past one Lambda: the steps of a sharded run, driven by a Step Functions
Distributed Map (statemachine/sharded_scoring.asl.json).

1. *plan*: one pass over the object's bytes finds quote-aware record boundaries
   (model_store.batch.plan) and writes the shards, with the first line of each, as a JSON
   array under the run's staging prefix; the model version is pinned for every shard.
2. *score*: each shard is the file's header plus one byte range, scored by the same engine
   into its own predictions and errors parts, with a tally (counts, first errors, counts
   per drift bin) beside them.
3. *merge*: the parts are joined in order into the very objects one pass writes (S3
   copies them server-side where their sizes allow), and the tallies add up to the report
   one pass writes; the staging objects are removed.
4. *fail*: any failed step ends here: a failed report, no partial outputs, staging removed.

Every run is named by its execution; its staging objects live under
``staging/<execution>/``, which no trigger watches and a lifecycle rule expires.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, Field

from model_store.aws_errors import describe_error
from model_store.batch.assemble import assemble
from model_store.batch.engine import (
    DEFAULT_CHUNK_ROWS,
    FIRST_ERRORS,
    Part,
    Refused,
    Tally,
    drift_of,
    score_stream,
)
from model_store.batch.handover import (
    DEFAULT_CONCURRENCY,
    DEFAULT_SHARD_BYTES,
    DEFAULT_SHARD_ROWS,
    ShardedObject,
)
from model_store.batch.inputs import csv_text
from model_store.batch.plan import Plan, plan_shards
from model_store.batch.report import (
    DEFAULT_DRIFT_THRESHOLD,
    BatchReport,
    ModelRef,
    RowError,
)
from model_store.batch.s3 import write_report
from model_store.batch.sinks import S3MultipartSink
from model_store.exceptions import DataBucketError
from model_store.gate import LoadedModel

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

log = logging.getLogger(__name__)

STAGING_PREFIX = "staging/"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlannedRun(_Model):
    """What the plan step hands to the Map and to the merge."""

    outcome: Literal["scored", "rejected"]
    items_key: str = ""  # the JSON array of shards the Map's ItemReader reads
    shards: int = 0
    header_end: int = 0
    # The scorer's chunk size the cuts were aligned to: every shard scores with it, so
    # its chunks are one pass's whatever the functions' settings say.
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    concurrency: int = 1
    model: ModelRef | None = None


class ShardRange(_Model):
    index: int
    start: int
    end: int
    first_line: int


class ShardTally(_Model):
    """One shard's outcome, beside its parts; the merge adds these up."""

    index: int
    refused: str | None = None
    rows_scored: int = 0
    rows_failed: int = 0
    first_errors: list[RowError] = Field(default_factory=list)
    passthrough_columns: list[str] = Field(default_factory=list)
    bin_counts: list[list[int]] = Field(default_factory=list)
    # The training fractions per drift bin, by feature in the model's order: the merge
    # computes drift without loading the model.
    reference: dict[str, list[float]] = Field(default_factory=dict)
    drift_threshold: float = DEFAULT_DRIFT_THRESHOLD

    @classmethod
    def of(
        cls, index: int, scored: Tally | Refused, model: LoadedModel, drift_threshold: float
    ) -> ShardTally:
        if isinstance(scored, Refused):
            return cls(index=index, refused=scored.reason)
        return cls(
            index=index,
            rows_scored=scored.rows_scored,
            rows_failed=scored.rows_failed,
            first_errors=scored.first_errors,
            passthrough_columns=scored.passthrough_columns,
            bin_counts=scored.bin_counts,
            reference={f.name: f.stats.bins.fractions for f in model.manifest.features},
            drift_threshold=drift_threshold,
        )


class StepInput(_Model):
    """The payload every step's Lambda gets from the state machine."""

    run: str
    object: ShardedObject
    plan: PlannedRun | None = None
    shard: ShardRange | None = None
    error: dict[str, Any] | None = None


def staging_key(run: str, *parts: str) -> str:
    return "/".join([STAGING_PREFIX.rstrip("/"), run, *parts])


def _part_key(run: str, kind: str, index: int) -> str:
    return staging_key(run, kind, f"{index:05d}.csv")


def _tally_key(run: str, index: int) -> str:
    return staging_key(run, "tallies", f"{index:05d}.json")


# -- plan -------------------------------------------------------------------------------


def plan_run(
    client: S3Client,
    step: StepInput,
    model: ModelRef,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> PlannedRun:
    """Cut the object into shards at record boundaries where the scorer's chunks of
    CHUNK_ROWS end; a file that cannot be cut safely gets its rejected report instead."""
    target = step.object
    with contextlib.closing(_get(client, target)) as body:
        planned = plan_shards(
            body, shard_lines=shard_rows, shard_bytes=shard_bytes, align_lines=chunk_rows
        )
    if not isinstance(planned, Plan):
        _final_report(client, step, "rejected", planned.reason, model=model)
        _remove_staging(client, target.bucket, step.run)
        return PlannedRun(outcome="rejected", model=model)
    items_key = staging_key(step.run, "plan.json")
    _put_staging(client, target.bucket, items_key, json.dumps(planned.to_items()).encode())
    log.info(
        "%s: %d shards of up to %d rows", target.source.location, len(planned.shards), shard_rows
    )
    return PlannedRun(
        outcome="scored",
        items_key=items_key,
        shards=len(planned.shards),
        header_end=planned.header_end,
        chunk_rows=chunk_rows,
        concurrency=max(1, min(concurrency, len(planned.shards))),
        model=model,
    )


# -- score one shard --------------------------------------------------------------------


def score_shard(
    client: S3Client,
    step: StepInput,
    model: LoadedModel,
    *,
    drift_threshold: float,
    neutralise_formulas: bool,
) -> ShardTally:
    """Score one shard into its staging parts; its tally is written last, so a tally
    that exists vouches for both parts."""
    if step.shard is None or step.plan is None:
        raise ValueError("a shard step needs the plan and its shard")
    shard, target, run = step.shard, step.object, step.run
    first = shard.index == 0
    with _shard_bytes(client, target, shard, step.plan.header_end) as binary:
        scored = score_stream(
            csv_text(binary, gzipped=False),
            model,
            S3MultipartSink(client, target.bucket, _part_key(run, "predictions", shard.index)),
            S3MultipartSink(client, target.bucket, _part_key(run, "errors", shard.index)),
            chunk_rows=step.plan.chunk_rows,
            drift_threshold=drift_threshold,
            neutralise_formulas=neutralise_formulas,
            part=Part(first_line=shard.first_line, first=first),
        )
    tally = ShardTally.of(shard.index, scored, model, drift_threshold)
    _put_staging(
        client, target.bucket, _tally_key(run, shard.index), tally.model_dump_json().encode()
    )
    return tally


# -- merge ------------------------------------------------------------------------------


def merge_run(client: S3Client, step: StepInput) -> BatchReport:
    """Join the shards' parts into the outputs one pass writes, and their tallies into
    its report; then remove the staging objects."""
    plan, target, run = step.plan, step.object, step.run
    if plan is None or plan.model is None:
        raise ValueError("a merge step needs the plan")
    tallies = [_read_tally(client, target.bucket, run, i) for i in range(plan.shards)]
    refused = next((t.refused for t in tallies if t.refused is not None), None)
    if refused is not None:
        report = _final_report(client, step, "rejected", refused, model=plan.model)
        _remove_staging(client, target.bucket, run)
        return report
    for kind in ("predictions", "errors"):
        assemble(
            client,
            target.bucket,
            [_part_key(run, kind, i) for i in range(plan.shards)],
            target.outputs[kind],
        )
    report = merged_report(tallies, step, plan.model, finished=datetime.now(UTC))
    write_report(client, target.bucket, target.outputs["report"], report)
    _remove_staging(client, target.bucket, run)
    return report


def merged_report(
    tallies: Sequence[ShardTally], step: StepInput, model: ModelRef, *, finished: datetime
) -> BatchReport:
    """The report one pass over the file would write, from its shards' tallies."""
    target = step.object
    scored = sum(t.rows_scored for t in tallies)
    failed = sum(t.rows_failed for t in tallies)
    first_errors = [e for t in tallies for e in t.first_errors][:FIRST_ERRORS]
    counts = [
        [sum(bins) for bins in zip(*per_feature, strict=True)]
        for per_feature in zip(*(t.bin_counts for t in tallies), strict=True)
    ]
    head = tallies[0]
    duration = max((finished - target.started_at).total_seconds(), 0.0)
    return BatchReport(
        status="succeeded",
        source=target.source,
        model=model,
        outputs={
            kind: f"s3://{target.bucket}/{key}"
            for kind, key in target.outputs.items()
            if kind != "report"
        },
        rows_in=scored + failed,
        rows_scored=scored,
        rows_failed=failed,
        first_errors=first_errors,
        passthrough_columns=head.passthrough_columns,
        drift=drift_of(scored, counts, head.reference, head.drift_threshold),
        started_at=target.started_at,
        duration_seconds=duration,
        rows_per_second=(scored + failed) / duration if duration > 0 else 0.0,
        execution=step.run,
    )


# -- fail -------------------------------------------------------------------------------


def fail_run(client: S3Client, step: StepInput) -> BatchReport:
    """After any failed step: a failed report, no outputs half-written, no staging left."""
    target = step.object
    error = step.error or {}
    what = str(error.get("Error") or "the run failed")
    cause = _cause(error.get("Cause"))
    reason = f"sharded scoring failed: {what}" + (f": {cause}" if cause else "")
    for kind in ("predictions", "errors"):
        _abort_uploads(client, target.bucket, target.outputs[kind])
    _remove_staging(client, target.bucket, step.run)
    model = step.plan.model if step.plan is not None else None
    return _final_report(client, step, "failed", reason, model=model)


def _cause(cause: object) -> str:
    """A Lambda error's message out of the Cause Step Functions gives (its JSON, often)."""
    if not isinstance(cause, str):
        return ""
    try:
        parsed = json.loads(cause)
    except ValueError:
        return cause[:1000]
    if isinstance(parsed, dict):
        return str(parsed.get("errorMessage") or parsed.get("Cause") or cause)[:1000]
    return cause[:1000]


# -- S3 ---------------------------------------------------------------------------------


def _final_report(
    client: S3Client,
    step: StepInput,
    status: Literal["rejected", "failed"],
    reason: str,
    *,
    model: ModelRef | None,
) -> BatchReport:
    target = step.object
    duration = max((datetime.now(UTC) - target.started_at).total_seconds(), 0.0)
    report = BatchReport(
        status=status,
        reason=reason,
        source=target.source,
        model=model,
        started_at=target.started_at,
        duration_seconds=duration,
        execution=step.run,
    )
    return write_report(client, target.bucket, target.outputs["report"], report)


def _failed(op: str, bucket: str, key: str, exc: BaseException) -> DataBucketError:
    return DataBucketError(f"S3 {op} s3://{bucket}/{key} failed: {describe_error(exc)}")


def _get(client: S3Client, target: ShardedObject, byte_range: str | None = None) -> Any:
    """The pinned object version's body (a stream; a context manager closing it)."""
    kwargs: dict[str, Any] = {"Bucket": target.bucket, "Key": target.key}
    if target.version_id:
        kwargs["VersionId"] = target.version_id
    elif target.etag:
        kwargs["IfMatch"] = f'"{target.etag}"'
    if byte_range:
        kwargs["Range"] = byte_range
    try:
        return client.get_object(**kwargs)["Body"]
    except Exception as exc:
        raise _failed("GetObject", target.bucket, target.key, exc) from exc


class _Joined(io.RawIOBase):
    """Streams read one after another, as one."""

    def __init__(self, streams: Sequence[BinaryIO]) -> None:
        self._streams: Iterator[BinaryIO] = iter(streams)
        self._current: BinaryIO | None = next(self._streams, None)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while self._current is not None:
            data = self._current.read(len(view))
            if data:
                view[: len(data)] = data
                return len(data)
            self._current = next(self._streams, None)
        return 0


def shard_stream(header: bytes | None, rest: BinaryIO) -> io.BufferedReader[_Joined]:
    """The bytes a shard is scored from: the file's HEADER (None for the first shard,
    whose range holds it), then REST, the shard's range."""
    if header is None:
        return io.BufferedReader(_Joined([rest]), buffer_size=_READ_SIZE)
    if header.endswith(b"\r"):
        # A header ending in a bare CR would make one CRLF with a range that starts with
        # LF (a blank line of the file): the shard would lose that line.
        header += b"\n"
    return io.BufferedReader(_Joined([io.BytesIO(header), rest]), buffer_size=_READ_SIZE)


_READ_SIZE = 1024 * 1024


@contextlib.contextmanager
def _shard_bytes(
    client: S3Client, target: ShardedObject, shard: ShardRange, header_end: int
) -> Iterator[io.BufferedReader[_Joined]]:
    """The shard's bytes from S3 (see shard_stream), the bodies closed after."""
    header = None
    if shard.index > 0:
        with contextlib.closing(_get(client, target, f"bytes=0-{header_end - 1}")) as head:
            header = head.read()
    with contextlib.closing(_get(client, target, f"bytes={shard.start}-{shard.end - 1}")) as body:
        yield shard_stream(header, body)


def _put_staging(client: S3Client, bucket: str, key: str, body: bytes) -> None:
    try:
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
    except Exception as exc:
        raise _failed("PutObject", bucket, key, exc) from exc


def _read_tally(client: S3Client, bucket: str, run: str, index: int) -> ShardTally:
    key = _tally_key(run, index)
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        raise _failed("GetObject", bucket, key, exc) from exc
    return ShardTally.model_validate_json(body)


def _remove_staging(client: S3Client, bucket: str, run: str) -> None:
    """Delete everything under the run's staging prefix."""
    prefix = staging_key(run, "")
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            keys: list[ObjectIdentifierTypeDef] = [
                {"Key": item["Key"]} for item in page.get("Contents", [])
            ]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    except Exception as exc:
        raise _failed("DeleteObjects", bucket, prefix, exc) from exc


def _abort_uploads(client: S3Client, bucket: str, key: str) -> None:
    """Abort multipart uploads left on KEY by a merge that was stopped mid-way."""
    try:
        listed = client.list_multipart_uploads(Bucket=bucket, Prefix=key)
        for upload in listed.get("Uploads", []):
            if upload.get("Key") == key:
                client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
    except Exception as exc:
        raise _failed("AbortMultipartUpload", bucket, key, exc) from exc
