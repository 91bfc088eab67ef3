"""Shared helpers for the batch scoring tests: the iris model, iris CSVs, moto buckets.

The model is the session's trained iris artifact loaded through the real gate. S3 tests
get uuid-named buckets on the session's moto server (over real HTTP).
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
import pytest

from model_store.artifact import Artifact
from model_store.gate import LoadedModel, load_artifact_dir
from model_store.registry import Registry, open_registry

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CLASSES = ["setosa", "versicolor", "virginica"]
OUTPUT_COLUMNS = [
    "prediction",
    *(f"probability_{c}" for c in CLASSES),
    "source_line",
]
ERRORS_HEADER = "line,reason,raw\n"
REGISTRY_PREFIX = "registry"


@pytest.fixture(scope="session")
def loaded_model(iris_artifact: Artifact, tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """The session's iris model, through load_artifact_dir (version "local")."""
    return load_artifact_dir(iris_artifact.write(tmp_path_factory.mktemp("batch-artifact")))


@dataclass(frozen=True)
class IrisTable:
    """The 150 iris rows as CSV cells: header + rows, and each id's true species."""

    header: list[str]
    rows: list[list[str]]
    labels: dict[str, str]


def iris_table(*, shift: float = 0.0, header: Sequence[str] | None = None) -> IrisTable:
    """The 150 iris rows with an ``id`` column, in the column order of HEADER.

    HEADER names the columns as they appear in the file (any case, padded with spaces);
    the default is ``id`` then the four features. SHIFT is added to every feature value.
    """
    from sklearn.datasets import load_iris

    iris = load_iris()
    names = list(header or ["id", *FEATURES])
    keys = [n.strip().lower() for n in names]
    rows: list[list[str]] = []
    labels: dict[str, str] = {}
    for index, (values, target) in enumerate(zip(iris.data, iris.target, strict=True)):
        ident = f"row-{index:03d}"
        cells = {"id": ident}
        cells.update(
            {f: repr(round(float(v) + shift, 6)) for f, v in zip(FEATURES, values, strict=True)}
        )
        rows.append([cells[k] for k in keys])
        labels[ident] = str(iris.target_names[target])
    return IrisTable(names, rows, labels)


def csv_text(header: Sequence[str], rows: Sequence[Sequence[str]], *, newline: str = "\n") -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=newline).writerows([list(header), *map(list, rows)])
    return buffer.getvalue()


def parse_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def parse_errors(text: str) -> list[dict[str, str]]:
    assert text.startswith(ERRORS_HEADER)
    return list(csv.DictReader(io.StringIO(text, newline="")))


# -- S3 -------------------------------------------------------------------------------


@pytest.fixture
def s3(moto_endpoint: str) -> S3Client:
    """A client of the tests' own on the moto server."""
    return boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)


def new_bucket(s3: S3Client, purpose: str) -> str:
    name = f"batch-{purpose}-{uuid.uuid4().hex[:20]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def data_bucket(s3: S3Client) -> str:
    """An empty data bucket (incoming/, predictions/, errors/, reports/)."""
    return new_bucket(s3, "data")


@pytest.fixture
def model_bucket(s3: S3Client) -> str:
    """An empty bucket for a model registry under REGISTRY_PREFIX."""
    return new_bucket(s3, "models")


@pytest.fixture
def registry(s3: S3Client, model_bucket: str, iris_artifact: Artifact) -> Registry:
    """iris version "1" published in the model bucket and promoted to production."""
    registry = open_registry(f"s3://{model_bucket}/{REGISTRY_PREFIX}", s3_client=s3)
    registry.publish(iris_artifact, name="iris", version="1")
    registry.promote("iris", "1", alias="production")
    return registry


def keys_under(s3: S3Client, bucket: str, prefix: str = "") -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def read_object(s3: S3Client, bucket: str, key: str) -> str:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def pending_uploads(s3: S3Client, bucket: str) -> list[str]:
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
