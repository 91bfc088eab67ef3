"""Where batch outputs go: written as they are produced, visible only once committed.

An S3 output is a multipart upload completed at the end (aborted on failure); a local
one is a temporary file renamed at the end. Either way no reader ever sees half a file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Protocol, Self

from model_store.aws_errors import describe_error
from model_store.exceptions import DataBucketError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

PART_SIZE = 8 * 1024 * 1024  # S3 parts must be >= 5 MiB, except the last


class Output(Protocol):
    """What the engine writes scored chunks to."""

    def write(self, data: bytes, /) -> object: ...


class Sink(Output, Protocol):
    """An output that becomes visible only when committed; as a context manager it
    commits when the block succeeds and aborts when it raises."""

    def commit(self) -> None: ...
    def abort(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class _Committing:
    """Commit on success, abort on an exception (which propagates), like smart_open's writers."""

    def commit(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.commit()
        else:
            self.abort()


class FileSink(_Committing):
    """A temporary file beside PATH, renamed to PATH on commit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp: Path | None = None
        self._handle: BinaryIO | None = None

    def _open(self) -> BinaryIO:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(
                dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".partial"
            )
            self._tmp = Path(name)
            self._handle = os.fdopen(fd, "wb")
        return self._handle

    def write(self, data: bytes) -> None:
        self._open().write(data)

    def commit(self) -> None:
        self._open().close()
        assert self._tmp is not None
        self._tmp.replace(self.path)
        self._handle = self._tmp = None

    def abort(self) -> None:
        if self._handle is not None:
            self._handle.close()
        if self._tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()
        self._handle = self._tmp = None


class S3MultipartSink(_Committing):
    """Buffers to PART_SIZE, uploads parts as it goes, completes on commit."""

    def __init__(
        self, client: S3Client, bucket: str, key: str, *, part_size: int = PART_SIZE
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.part_size = part_size
        self._buffer = bytearray()
        self._parts: list[CompletedPartTypeDef] = []
        self._upload_id: str | None = None

    def _call(self, op: str, fn: object, **kwargs: object) -> dict[str, object]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            result: dict[str, object] = fn(**kwargs)  # type: ignore[operator]
            return result
        except (ClientError, BotoCoreError) as exc:
            raise DataBucketError(
                f"S3 {op} s3://{self.bucket}/{self.key} failed: {describe_error(exc)}"
            ) from None

    def write(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= self.part_size:
            self._upload_part()

    def _upload_part(self) -> None:
        if self._upload_id is None:
            created = self._call(
                "CreateMultipartUpload",
                self.client.create_multipart_upload,
                Bucket=self.bucket,
                Key=self.key,
                ContentType="text/csv",
            )
            self._upload_id = str(created["UploadId"])
        number = len(self._parts) + 1
        uploaded = self._call(
            "UploadPart",
            self.client.upload_part,
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=bytes(self._buffer),
        )
        self._parts.append({"PartNumber": number, "ETag": str(uploaded["ETag"])})
        self._buffer.clear()

    def commit(self) -> None:
        if self._upload_id is None:
            # Small output: one plain PUT is atomic too.
            self._call(
                "PutObject",
                self.client.put_object,
                Bucket=self.bucket,
                Key=self.key,
                Body=bytes(self._buffer),
                ContentType="text/csv",
            )
            return
        if self._buffer:
            self._upload_part()
        self._call(
            "CompleteMultipartUpload",
            self.client.complete_multipart_upload,
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )

    def abort(self) -> None:
        self._buffer.clear()
        if self._upload_id is not None:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=self._upload_id
                )
            self._upload_id = None
