"""Sinks as context managers: a block that succeeds commits its output, one that raises
aborts it (nothing visible, no multipart upload left open) and the exception propagates."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from model_store.batch import FileSink, S3MultipartSink
from tests.support.s3 import keys_under

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class BoomError(Exception):
    pass


def test_a_file_sink_commits_when_its_block_succeeds(tmp_path: Path) -> None:
    target = tmp_path / "out" / "predictions.csv"
    with FileSink(target) as sink:
        sink.write(b"a,b\n")
        sink.write(b"1,2\n")
        assert not target.exists()  # nobody sees half a file
    assert target.read_bytes() == b"a,b\n1,2\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["predictions.csv"]


def test_a_file_sink_aborts_when_its_block_raises(tmp_path: Path) -> None:
    target = tmp_path / "predictions.csv"
    target.write_bytes(b"the previous run's output\n")

    def fail_half_way() -> None:
        with FileSink(target) as sink:
            sink.write(b"a,b\n")
            raise BoomError

    with pytest.raises(BoomError):
        fail_half_way()
    assert target.read_bytes() == b"the previous run's output\n"
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.csv"]  # no .partial left


def test_an_empty_file_sink_commits_an_empty_file(tmp_path: Path) -> None:
    with FileSink(tmp_path / "errors.csv"):
        pass
    assert (tmp_path / "errors.csv").read_bytes() == b""


@pytest.mark.parametrize("size", [10, 3 * 5 * 1024 * 1024 // 2], ids=["one put", "multipart"])
def test_an_s3_sink_commits_when_its_block_succeeds(
    s3: S3Client, data_bucket: str, size: int
) -> None:
    body = b"x" * size
    with S3MultipartSink(s3, data_bucket, "predictions/a.csv", part_size=5 * 1024 * 1024) as sink:
        sink.write(body)
        assert keys_under(s3, data_bucket) == []
    assert s3.get_object(Bucket=data_bucket, Key="predictions/a.csv")["Body"].read() == body


def test_an_s3_sink_aborts_its_upload_when_its_block_raises(s3: S3Client, data_bucket: str) -> None:
    part = 5 * 1024 * 1024

    def fail_after_a_part() -> None:
        with S3MultipartSink(s3, data_bucket, "predictions/a.csv", part_size=part) as sink:
            sink.write(b"x" * (part + 1))  # one part uploaded: an upload is open
            assert s3.list_multipart_uploads(Bucket=data_bucket).get("Uploads")
            raise BoomError

    with pytest.raises(BoomError):
        fail_after_a_part()
    assert keys_under(s3, data_bucket) == []
    assert not s3.list_multipart_uploads(Bucket=data_bucket).get("Uploads")
