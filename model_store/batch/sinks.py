"""Where batch outputs go: written as they are produced, visible only once committed.

An S3 output is a multipart upload completed at the end (aborted on failure); a local
one is a temporary file renamed at the end. Either way no reader ever sees half a file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from model_store.exceptions import RegistryError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

PART_SIZE = 8 * 1024 * 1024  # S3 parts must be >= 5 MiB, except the last


class Sink(Protocol):
    def write(self, data: bytes) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


class FileSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
        self._tmp = Path(name)
        self._handle = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        self._handle.write(data)

    def commit(self) -> None:
        self._handle.close()
        self._tmp.replace(self.path)

    def abort(self) -> None:
        self._handle.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()


class S3MultipartSink:
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
            raise RegistryError(f"S3 {op} s3://{self.bucket}/{self.key} failed: {exc}") from None

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
