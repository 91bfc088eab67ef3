"""What the batch scorer takes: .csv and .csv.gz in any case; anything else under the
input prefix gets a rejected report saying what is accepted, never silence or retries."""

from __future__ import annotations

import functools
import gzip
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from model_store.batch import BatchReport, score_file, score_s3_object
from model_store.gate import LoadedModel, load_model
from model_store.registry import Registry
from tests.support.batch_files import csv_text, iris_table, parse_csv
from tests.support.s3 import keys_under, pending_uploads, read_object

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_s3 import S3Client


@pytest.fixture
def model(iris_registry: Registry) -> Callable[[], LoadedModel]:
    return functools.partial(load_model, iris_registry, "iris", "1", cache_dir=None)


def iris_csv() -> str:
    table = iris_table()
    return csv_text(table.header, table.rows)


def report_at(s3: S3Client, bucket: str, key: str) -> BatchReport:
    return BatchReport.model_validate_json(read_object(s3, bucket, key))


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
@pytest.mark.parametrize("name", ["upper.CSV", "Mixed.Csv", "x.csv.gz", "Y.CSV.GZ"])
def test_csv_and_gzipped_csv_are_scored_whatever_the_case(
    s3: S3Client, data_bucket: str, model: Callable[[], LoadedModel], name: str
) -> None:
    body = iris_csv().encode()
    if name.lower().endswith(".gz"):
        body = gzip.compress(body)
    s3.put_object(Bucket=data_bucket, Key=f"incoming/{name}", Body=body)

    outcome = score_s3_object(s3, data_bucket, f"incoming/{name}", model)

    assert outcome.report.status == "succeeded", outcome.report.reason
    assert outcome.report.rows_scored == 150
    stem = name[: -len(".csv.gz")] if name.lower().endswith(".gz") else name[: -len(".csv")]
    predictions = parse_csv(read_object(s3, data_bucket, f"predictions/{stem}.csv"))
    assert len(predictions) == 151  # plain CSV out, whatever came in
    assert report_at(s3, data_bucket, f"reports/{stem}.json") == outcome.report


@pytest.mark.parametrize("name", ["notes.txt", "data.csv.zip", "data.tsv", "csv"])
def test_anything_else_under_the_prefix_gets_a_report_saying_what_is_taken(
    s3: S3Client, data_bucket: str, model: Callable[[], LoadedModel], name: str
) -> None:
    s3.put_object(Bucket=data_bucket, Key=f"incoming/{name}", Body=iris_csv().encode())

    outcome = score_s3_object(s3, data_bucket, f"incoming/{name}", model)

    assert outcome.report.status == "rejected"
    assert outcome.report.reason == (
        f"only .csv and .csv.gz files are scored (the suffix in any case): {name}"
    )
    assert keys_under(s3, data_bucket, "reports/") == [
        f"reports/{name}.html",
        f"reports/{name}.json",
    ]
    assert keys_under(s3, data_bucket, "predictions/") == []


def test_a_folder_marker_is_not_a_file_and_gets_nothing(
    s3: S3Client, data_bucket: str, model: Callable[[], LoadedModel]
) -> None:
    s3.put_object(Bucket=data_bucket, Key="incoming/2026/", Body=b"")
    outcome = score_s3_object(s3, data_bucket, "incoming/2026/", model)
    assert outcome.duplicate is True
    assert keys_under(s3, data_bucket, "reports/") == []


def test_a_gzip_over_the_limit_is_refused_naming_it(
    s3: S3Client, data_bucket: str, model: Callable[[], LoadedModel]
) -> None:
    body = gzip.compress(iris_csv().encode())
    s3.put_object(Bucket=data_bucket, Key="incoming/big.csv.gz", Body=body)

    outcome = score_s3_object(
        s3, data_bucket, "incoming/big.csv.gz", model, max_gzip_bytes=len(body) - 1
    )

    assert outcome.report.status == "rejected"
    assert outcome.report.reason is not None
    assert f"over the {len(body) - 1:,}-byte limit" in outcome.report.reason
    assert "gzip cannot be split" in outcome.report.reason
    assert keys_under(s3, data_bucket, "predictions/") == []


@pytest.mark.parametrize(
    ("what", "body"),
    [
        ("not gzip at all", b"id,sepal_length\n1,2\n"),
        (
            "truncated",
            gzip.compress(b"sepal_length,sepal_width,petal_length,petal_width\n" * 999, mtime=0)[
                :60
            ],
        ),
    ],
    ids=["not gzip at all", "truncated"],
)
def test_an_unreadable_gzip_is_rejected_not_retried(
    s3: S3Client, data_bucket: str, model: Callable[[], LoadedModel], what: str, body: bytes
) -> None:
    s3.put_object(Bucket=data_bucket, Key="incoming/broken.csv.gz", Body=body)

    outcome = score_s3_object(s3, data_bucket, "incoming/broken.csv.gz", model)

    assert outcome.report.status == "rejected", what
    assert outcome.report.reason is not None
    assert outcome.report.reason.startswith("not a readable gzip file")
    assert keys_under(s3, data_bucket, "predictions/") == []
    assert pending_uploads(s3, data_bucket) == []


def test_score_file_reads_a_gzipped_csv(tmp_path: Path, iris_registry: Registry) -> None:
    source = tmp_path / "flowers.csv.gz"
    source.write_bytes(gzip.compress(iris_csv().encode()))
    loaded = load_model(iris_registry, "iris", "1", cache_dir=None)

    report = score_file(source, loaded, tmp_path / "out")

    assert report.status == "succeeded", report.reason
    assert report.rows_scored == 150
    assert (tmp_path / "out" / "flowers.predictions.csv").exists()
