"""Assembling sharded outputs: part objects under a staging prefix become one object.

Child runs each write a part (staging/<run>/predictions/00000.csv, 00001.csv, ...); the
merge step joins them, in order, into one destination with a multipart upload. Whatever
is big is copied server-side (UploadPartCopy of a byte range); only small pieces pass
through here (ranged GETs, UploadPart), because S3 wants every part but the last to be at
least 5 MiB. Planning is pure (:func:`plan_parts`); :func:`assemble` runs a plan and,
like the sinks, never leaves a half-written destination or an open upload behind.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias, TypedDict

from model_store.aws_errors import describe_error
from model_store.exceptions import DataBucketError, ModelStoreError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

MiB = 1024 * 1024
GiB = 1024 * MiB
_READ_CHUNK = 1 * MiB  # how much of a ranged GET is read at a time


@dataclass(frozen=True)
class PartLimits:
    """S3's multipart rules; smaller ones make plans small enough to test by hand."""

    min_part: int = 5 * MiB  # every part but the last
    max_part: int = 5 * GiB
    max_parts: int = 10_000

    def __post_init__(self) -> None:
        # Below 2 * min_part some lengths over max_part could not be split into parts
        # that are all >= min_part (and a buffered part can reach 2 * min_part - 2).
        if self.min_part < 1 or self.max_part < 2 * self.min_part or self.max_parts < 1:
            raise ValueError(
                f"part limits need 1 <= min_part, 2 * min_part <= max_part and "
                f"1 <= max_parts, not {self}"
            )


S3_LIMITS = PartLimits()


class TooManyPartsError(ModelStoreError, ValueError):
    """The sources cannot be assembled within S3's part count."""


@dataclass(frozen=True)
class Span:
    """Bytes [start, stop) of one source object."""

    key: str
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def http_range(self) -> str:
        return f"bytes={self.start}-{self.stop - 1}"  # HTTP ranges are inclusive


@dataclass(frozen=True)
class CopiedPart:
    """A part S3 copies from one source's span (UploadPartCopy): no bytes pass through us."""

    span: Span

    @property
    def size(self) -> int:
        return self.span.size


@dataclass(frozen=True)
class DownloadedPart:
    """A part made of spans read with ranged GETs, concatenated and uploaded (UploadPart),
    or PUT as the whole object when it is the only part."""

    spans: tuple[Span, ...]

    @property
    def size(self) -> int:
        return sum(span.size for span in self.spans)


Part: TypeAlias = CopiedPart | DownloadedPart


def plan_parts(sources: Sequence[tuple[str, int]], limits: PartLimits = S3_LIMITS) -> list[Part]:
    """The parts that concatenate SOURCES ((key, size), in order) into one object.

    Sources under min_part are buffered and downloaded; a buffer that reaches min_part
    becomes a part. A source of min_part or more is copied server-side (in pieces of at
    most max_part); when small ones are buffered before it, its head tops the buffer up to
    exactly min_part and the rest is copied, unless the rest is too small to be a part and
    more follows: then the whole source joins the buffer (under 2 * min_part), which leaves
    the buffer empty so the next big source is copied whole. Zero-byte sources are skipped;
    no sources, or only empty ones, plan no parts (the executor PUTs b"").
    """
    for key, size in sources:
        if size < 0:
            raise ValueError(f"source {key!r} has a negative size ({size})")
    present = [(key, size) for key, size in sources if size > 0]
    min_part = limits.min_part
    parts: list[Part] = []
    buffer: list[Span] = []
    buffered = 0

    def flush() -> None:
        nonlocal buffered
        parts.append(DownloadedPart(tuple(buffer)))
        buffer.clear()
        buffered = 0

    for index, (key, size) in enumerate(present):
        is_last = index == len(present) - 1
        if size < min_part:
            buffer.append(Span(key, 0, size))
            buffered += size
            if buffered >= min_part:
                flush()
            continue
        start = 0
        if buffered:
            start = min_part - buffered
            if size - start < min_part and not is_last:
                buffer.append(Span(key, 0, size))
                flush()
                continue
            buffer.append(Span(key, 0, start))
            flush()
        parts.extend(_copies(key, start, size, limits.max_part))
    if buffer:
        flush()  # the last part: it may be under min_part
    if len(parts) > limits.max_parts:
        total = sum(size for _, size in present)
        raise TooManyPartsError(
            f"assembling {len(present)} sources ({total} bytes) needs {len(parts)} parts; "
            f"S3 allows at most {limits.max_parts} parts of at most {limits.max_part} bytes, "
            f"each but the last at least {limits.min_part} bytes: write fewer, larger sources"
        )
    return parts


def _copies(key: str, start: int, stop: int, max_part: int) -> list[Part]:
    """[start, stop) of KEY as copies of at most max_part, sizes within one byte of each
    other (so each is over max_part / 2 >= min_part when there are several)."""
    length = stop - start
    count = -(-length // max_part)
    base, extra = divmod(length, count)
    copies: list[Part] = []
    for i in range(count):
        size = base + (i < extra)
        copies.append(CopiedPart(Span(key, start, start + size)))
        start += size
    return copies


class _IfMatch(TypedDict, total=False):
    IfMatch: str


class _CopySourceIfMatch(TypedDict, total=False):
    CopySourceIfMatch: str


def assemble(
    client: S3Client,
    bucket: str,
    sources: Sequence[str],
    destination: str,
    *,
    sizes: Sequence[int] | None = None,
    content_type: str = "text/csv",
    limits: PartLimits = S3_LIMITS,
) -> None:
    """Concatenate the SOURCES keys of BUCKET, in order, into DESTINATION.

    Without SIZES each source is HEADed, and its ETag pins every later read or copy of it
    (a source rewritten meanwhile fails the run instead of mixing versions). Small outputs
    are one PutObject; the rest one multipart upload, aborted on any failure, so the
    destination (or its previous version) is never seen half-written. At most one part's
    bytes (under 2 * min_part) are in memory at a time. S3 failures raise DataBucketError;
    too many parts raise TooManyPartsError before anything is written.
    """
    if sizes is not None and len(sizes) != len(sources):
        raise ValueError(f"{len(sources)} sources but {len(sizes)} sizes")
    _Assembly(client, bucket, destination, content_type).run(sources, sizes, limits)


class _Assembly:
    def __init__(self, client: S3Client, bucket: str, destination: str, content_type: str) -> None:
        self.client = client
        self.bucket = bucket
        self.destination = destination
        self.content_type = content_type
        self.etags: dict[str, str] = {}

    @contextlib.contextmanager
    def _s3(self, op: str, key: str) -> Iterator[None]:
        """Turn boto's errors in the block into DataBucketError, worded like the sinks'."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            raise DataBucketError(self._message(op, key, describe_error(exc))) from None

    def _message(self, op: str, key: str, what: str) -> str:
        message = f"S3 {op} s3://{self.bucket}/{key} failed: {what}"
        if key != self.destination:
            message += f" (assembling s3://{self.bucket}/{self.destination})"
        return message

    def run(self, sources: Sequence[str], sizes: Sequence[int] | None, limits: PartLimits) -> None:
        if sizes is None:
            sizes = [self._head(key) for key in sources]
        plan = plan_parts(list(zip(sources, sizes, strict=True)), limits)
        match plan:
            # Small output: one plain PUT is atomic too, and needs no 5 MiB part.
            case []:
                return self._put(io.BytesIO())
            case [DownloadedPart() as only]:
                return self._put(self._download(only))
        with self._s3("CreateMultipartUpload", self.destination):
            created = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.destination, ContentType=self.content_type
            )
        upload_id = created["UploadId"]
        try:
            completed: list[CompletedPartTypeDef] = []
            for number, part in enumerate(plan, start=1):
                etag = (
                    self._copy(upload_id, number, part.span)
                    if isinstance(part, CopiedPart)
                    else self._upload(upload_id, number, part)
                )
                completed.append({"PartNumber": number, "ETag": etag})
            with self._s3("CompleteMultipartUpload", self.destination):
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.destination,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": completed},
                )
        except BaseException:
            # Best effort: the failure that brought us here is the one to report (a bucket
            # lifecycle rule for incomplete uploads is the backstop if this fails too).
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.destination, UploadId=upload_id
                )
            raise

    def _put(self, body: io.BytesIO) -> None:
        with self._s3("PutObject", self.destination):
            self.client.put_object(
                Bucket=self.bucket, Key=self.destination, Body=body, ContentType=self.content_type
            )

    def _head(self, key: str) -> int:
        with self._s3("HeadObject", key):
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        self.etags[key] = head["ETag"]
        return head["ContentLength"]

    def _download(self, part: DownloadedPart) -> io.BytesIO:
        """PART's bytes, read a chunk at a time into one buffer the upload then reads
        (seekable, so botocore can checksum and retry it without another copy)."""
        buffer = io.BytesIO()
        for span in part.spans:
            condition: _IfMatch = {}
            if span.key in self.etags:
                condition["IfMatch"] = self.etags[span.key]
            before = buffer.tell()
            with self._s3("GetObject", span.key):
                got = self.client.get_object(
                    Bucket=self.bucket, Key=span.key, Range=span.http_range, **condition
                )
                for chunk in got["Body"].iter_chunks(_READ_CHUNK):
                    buffer.write(chunk)
            if buffer.tell() - before != span.size:
                # The object is shorter than the size it was planned with.
                raise DataBucketError(
                    self._message(
                        "GetObject",
                        span.key,
                        f"ShortRead: {span.http_range} gave {buffer.tell() - before} bytes",
                    )
                )
        buffer.seek(0)
        return buffer

    def _upload(self, upload_id: str, number: int, part: DownloadedPart) -> str:
        body = self._download(part)
        with self._s3("UploadPart", self.destination):
            uploaded = self.client.upload_part(
                Bucket=self.bucket,
                Key=self.destination,
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
            )
        return uploaded["ETag"]

    def _copy(self, upload_id: str, number: int, span: Span) -> str:
        condition: _CopySourceIfMatch = {}
        if span.key in self.etags:
            condition["CopySourceIfMatch"] = self.etags[span.key]
        with self._s3("UploadPartCopy", span.key):
            copied = self.client.upload_part_copy(
                Bucket=self.bucket,
                Key=self.destination,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": self.bucket, "Key": span.key},
                # Always a range, even for a whole source: exactly the planned bytes.
                CopySourceRange=span.http_range,
                **condition,
            )
        return copied["CopyPartResult"]["ETag"]
