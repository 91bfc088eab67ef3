"""Where registry objects live: one Protocol, a local directory and an S3 prefix.

The registry's behaviour lives once in ``Registry``; a store only moves bytes, so the
two backends cannot drift apart.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, cast

from model_store.aws_errors import describe_error, is_not_found, is_precondition_failed
from model_store.exceptions import ModelStoreError, RegistryError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class KeyNotFound(ModelStoreError):  # noqa: N818 - an outcome, not a failure
    """Internal: the key does not exist in the store."""


class KeyExists(ModelStoreError):  # noqa: N818
    """Internal: an exclusive write found the key already there."""


class ObjectStore(Protocol):
    """Byte storage under slash-separated keys."""

    def describe(self, key: str = "") -> str:
        """A human-readable location (``s3://b/p/key`` or a path) for messages."""
        ...

    def read(self, key: str) -> bytes:
        """Raise KeyNotFound if absent."""
        ...

    def write(self, key: str, data: bytes, *, exclusive: bool = False) -> None:
        """Write atomically; with ``exclusive`` raise KeyExists rather than overwrite."""
        ...

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix`` (recursive), as full keys."""
        ...

    def deadline(self, seconds: float, *, attempts: int) -> AbstractContextManager[None]:
        """Calls made in the block end within SECONDS, with at most ATTEMPTS tries each,
        where the store can bound them (else the block changes nothing)."""
        ...


class LocalStore:
    """A directory; writes go through a temporary file so readers never see half a file."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def deadline(self, seconds: float, *, attempts: int) -> AbstractContextManager[None]:
        return contextlib.nullcontext()  # a local disk does not hang the way a network does

    def describe(self, key: str = "") -> str:
        return str(self.root / key) if key else str(self.root)

    def read(self, key: str) -> bytes:
        try:
            return (self.root / key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyNotFound(key) from None
        except OSError as exc:
            raise RegistryError(f"cannot read {self.describe(key)}: {exc}") from None

    def write(self, key: str, data: bytes, *, exclusive: bool = False) -> None:
        path = self.root / key
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            tmp = Path(name)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                if exclusive:
                    # A hard link fails if the target exists: an atomic create-if-absent.
                    try:
                        path.hardlink_to(tmp)
                    except FileExistsError:
                        raise KeyExists(key) from None
                else:
                    tmp.replace(path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
        except OSError as exc:
            raise RegistryError(f"cannot write {self.describe(key)}: {exc}") from None

    def list_keys(self, prefix: str) -> Iterator[str]:
        base = self.root / prefix
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                yield path.relative_to(self.root).as_posix()


class S3Store:
    """An S3 bucket and prefix, through an injected boto3 client."""

    def __init__(self, client: S3Client, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    def describe(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def deadline(self, seconds: float, *, attempts: int) -> AbstractContextManager[None]:
        # botocore's own timeouts and retries apply (the client's Config): this store is
        # the tools' and the fallback's, not the functions' usual one (S3HttpStore).
        return contextlib.nullcontext()

    def _fail(self, op: str, key: str, exc: Exception) -> RegistryError:
        return RegistryError(f"S3 {op} {self.describe(key)} failed: {describe_error(exc)}")

    def read(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            return response["Body"].read()
        except ClientError as exc:
            if is_not_found(exc):
                raise KeyNotFound(key) from None
            raise self._fail("GetObject", key, exc) from None
        except BotoCoreError as exc:
            raise self._fail("GetObject", key, exc) from None

    def write(
        self,
        key: str,
        data: bytes,
        *,
        exclusive: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Put DATA at KEY; PROGRESS, when given, is called with each amount of bytes sent."""
        from botocore.exceptions import BotoCoreError, ClientError

        body = data if progress is None else self._reporting_body(data, progress)
        try:
            if exclusive:
                # S3 conditional write: create-if-absent, atomic on the server side.
                self.client.put_object(
                    Bucket=self.bucket, Key=self.prefix + key, Body=body, IfNoneMatch="*"
                )
            else:
                self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=body)
        except ClientError as exc:
            if exclusive and is_precondition_failed(exc):
                raise KeyExists(key) from None
            raise self._fail("PutObject", key, exc) from None
        except BotoCoreError as exc:
            raise self._fail("PutObject", key, exc) from None

    def _reporting_body(self, data: bytes, progress: Callable[[int], None]) -> BinaryIO:
        """DATA as a body that reports the bytes as they are sent: s3transfer's reader and
        the handlers boto3's uploads use, which keep it quiet while botocore reads the body
        to checksum and sign it (and rewind the count when a retry sends it again)."""
        from s3transfer.utils import ReadFileChunk, signal_not_transferring, signal_transferring

        events = self.client.meta.events
        event = "request-created.s3"
        events.register_first(event, signal_not_transferring, unique_id="s3upload-not-transferring")
        events.register_last(event, signal_transferring, unique_id="s3upload-transferring")

        def sent(bytes_transferred: int) -> None:
            progress(bytes_transferred)

        body = ReadFileChunk(io.BytesIO(data), len(data), len(data), [sent], False)
        return cast(BinaryIO, body)

    def list_keys(self, prefix: str) -> Iterator[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    yield item["Key"][len(self.prefix) :]
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("ListObjectsV2", prefix, exc) from None
