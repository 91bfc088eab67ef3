"""score_s3_object against a moto server: outputs, report, idempotency, failures.

A failure that is not about rows raises after writing a "failed" report; whatever
happens, no partial predictions or errors object is ever visible and no multipart upload
is left pending.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

import model_store.batch.s3
from model_store.batch import (
    BatchReport,
    Outcome,
    OutputLayout,
    S3MultipartSink,
    score_file,
    score_s3_object,
)
from model_store.batch.report import ModelRef
from model_store.exceptions import DataBucketError, ModelStoreError, ModelUnavailableError
from model_store.gate import LoadedModel, load_model
from model_store.registry import Registry, open_registry
from model_store.serving import ModelLoader
from tests.support.batch_files import (
    ERRORS_HEADER,
    FEATURES,
    OUTPUT_COLUMNS,
    csv_text,
    iris_table,
    parse_csv,
    parse_errors,
)
from tests.support.s3 import REGISTRY_PREFIX, keys_under, pending_uploads, read_object

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ModelSource = Callable[[], LoadedModel]

BAD_ROWS = [["bad-1", "5.1", "oops", "1.4", "0.2"], ["bad-2", "5.1", "3.5"]]


def _iris_csv(extra: list[list[str]] | None = None, *, repeat: int = 1) -> str:
    table = iris_table()
    return csv_text(table.header, [*table.rows * repeat, *(extra or [])])


@pytest.fixture
def model(iris_registry: Registry) -> ModelSource:
    """iris@1 loaded from the moto registry on each call (no disk cache)."""
    return functools.partial(load_model, iris_registry, "iris", "1", cache_dir=None)


@pytest.fixture
def operations(s3: S3Client) -> list[str]:
    """The name of every S3 operation the test's client calls, in order."""
    called: list[str] = []

    def record(model: Any, **_: Any) -> None:
        called.append(model.name)

    s3.meta.events.register("before-call.s3", record)
    return called


WRITES = {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"}


def _put(s3: S3Client, bucket: str, key: str, body: str | bytes) -> dict[str, Any]:
    data = body.encode() if isinstance(body, str) else body
    response: dict[str, Any] = dict(s3.put_object(Bucket=bucket, Key=key, Body=data))
    return response


def _report(s3: S3Client, bucket: str, key: str) -> BatchReport:
    return BatchReport.model_validate_json(read_object(s3, bucket, key))


def _outputs_state(s3: S3Client, bucket: str) -> dict[str, tuple[str, object]]:
    """Key -> (ETag, LastModified) of every output object."""
    state: dict[str, tuple[str, object]] = {}
    for prefix in ("predictions/", "errors/", "reports/"):
        for key in keys_under(s3, bucket, prefix):
            head = s3.head_object(Bucket=bucket, Key=key)
            state[key] = (head["ETag"], head["LastModified"])
    return state


# -- the happy path ------------------------------------------------------------------------


def test_an_incoming_csv_is_scored_into_predictions_errors_and_a_report(
    s3: S3Client, data_bucket: str, model: ModelSource
) -> None:
    put = _put(s3, data_bucket, "incoming/iris.csv", _iris_csv(BAD_ROWS))

    outcome = score_s3_object(s3, data_bucket, "incoming/iris.csv", model, chunk_rows=16)

    assert outcome.duplicate is False
    assert keys_under(s3, data_bucket) == [
        "errors/iris.csv",
        "incoming/iris.csv",
        "predictions/iris.csv",
        "reports/iris.html",
        "reports/iris.json",
    ]
    report = outcome.report
    assert report.status == "succeeded", report.reason
    assert report.source.location == f"s3://{data_bucket}/incoming/iris.csv"
    assert report.source.etag == put["ETag"].strip('"')
    assert report.source.version_id is None  # the bucket is not versioned
    assert report.model == ModelRef(name="iris", version="1")
    assert (report.rows_in, report.rows_scored, report.rows_failed) == (152, 150, 2)
    assert [(e.line, e.reason) for e in report.first_errors] == [
        (152, "sepal_width: 'oops' is not a number"),
        (153, "expected 5 fields, found 3"),
    ]
    assert report.outputs == {
        "predictions": f"s3://{data_bucket}/predictions/iris.csv",
        "errors": f"s3://{data_bucket}/errors/iris.csv",
    }
    assert report.duration_seconds > 0
    assert report.rows_per_second == pytest.approx(152 / report.duration_seconds, rel=0.5)
    assert report.drift is not None
    assert set(report.drift.features) == set(FEATURES)
    assert report.drift.flagged == []

    stored = json.loads(read_object(s3, data_bucket, "reports/iris.json"))
    assert stored == report.model_dump(mode="json")
    assert s3.head_object(Bucket=data_bucket, Key="reports/iris.json")["ContentType"] == (
        "application/json"
    )

    predictions = parse_csv(read_object(s3, data_bucket, "predictions/iris.csv"))
    assert predictions[0] == ["id", *FEATURES, *OUTPUT_COLUMNS]
    assert [row[-1] for row in predictions[1:]] == [str(n) for n in range(2, 152)]
    table = iris_table()
    accuracy = sum(row[5] == table.labels[row[0]] for row in predictions[1:]) / 150
    assert accuracy > 0.9
    errors = parse_errors(read_object(s3, data_bucket, "errors/iris.csv"))
    assert errors == [
        {
            "line": "152",
            "reason": "sepal_width: 'oops' is not a number",
            "raw": "bad-1,5.1,oops,1.4,0.2",
        },
        {"line": "153", "reason": "expected 5 fields, found 3", "raw": "bad-2,5.1,3.5"},
    ]


def test_a_versioned_source_reports_its_version_id(
    s3: S3Client, data_bucket: str, model: ModelSource
) -> None:
    s3.put_bucket_versioning(Bucket=data_bucket, VersioningConfiguration={"Status": "Enabled"})
    put = _put(s3, data_bucket, "incoming/iris.csv", _iris_csv())

    report = score_s3_object(s3, data_bucket, "incoming/iris.csv", model).report

    assert report.status == "succeeded"
    assert report.source.version_id == put["VersionId"]
    assert report.source.version_id
    assert _report(s3, data_bucket, "reports/iris.json").source.version_id == put["VersionId"]


def test_the_version_checked_is_the_version_read_even_if_overwritten_meanwhile(
    s3: S3Client, data_bucket: str, model: ModelSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.put_bucket_versioning(Bucket=data_bucket, VersioningConfiguration={"Status": "Enabled"})
    first = _put(s3, data_bucket, "incoming/iris.csv", _iris_csv())
    real_get_object = s3.get_object

    def get_object(**kwargs: Any) -> Any:
        if kwargs["Key"] == "incoming/iris.csv":  # a new upload lands just before the read
            _put(s3, data_bucket, "incoming/iris.csv", _iris_csv(BAD_ROWS))
        return real_get_object(**kwargs)

    monkeypatch.setattr(s3, "get_object", get_object)

    report = score_s3_object(
        s3, data_bucket, "incoming/iris.csv", model, version_id=first["VersionId"]
    ).report

    assert report.source.version_id == first["VersionId"]
    assert report.source.etag == first["ETag"].strip('"')
    assert (report.rows_in, report.rows_failed) == (150, 0)  # the first version's rows


def test_an_unversioned_object_overwritten_between_check_and_read_fails_and_retries(
    s3: S3Client, data_bucket: str, model: ModelSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    _put(s3, data_bucket, "incoming/iris.csv", _iris_csv())
    real_get_object = s3.get_object

    def get_object(**kwargs: Any) -> Any:
        if kwargs["Key"] == "incoming/iris.csv":
            _put(s3, data_bucket, "incoming/iris.csv", _iris_csv(BAD_ROWS))
        return real_get_object(**kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(s3, "get_object", get_object)
        with pytest.raises(ClientError, match="PreconditionFailed"):
            score_s3_object(s3, data_bucket, "incoming/iris.csv", model)
    failed = _report(s3, data_bucket, "reports/iris.json")
    retried = score_s3_object(s3, data_bucket, "incoming/iris.csv", model)

    assert failed.status == "failed"
    assert keys_under(s3, data_bucket) == [
        "errors/iris.csv",
        "incoming/iris.csv",
        "predictions/iris.csv",
        "reports/iris.html",
        "reports/iris.json",
    ]
    assert retried.duplicate is False
    assert (retried.report.rows_in, retried.report.rows_failed) == (152, 2)


def test_a_nested_key_with_spaces_keeps_its_path_under_each_prefix(
    s3: S3Client, data_bucket: str, model: ModelSource
) -> None:
    _put(s3, data_bucket, "incoming/2026/11/day one.csv", _iris_csv())

    outcome = score_s3_object(s3, data_bucket, "incoming/2026/11/day one.csv", model)

    assert outcome.report.status == "succeeded"
    assert keys_under(s3, data_bucket, "predictions/") == ["predictions/2026/11/day one.csv"]
    assert keys_under(s3, data_bucket, "errors/") == ["errors/2026/11/day one.csv"]
    assert keys_under(s3, data_bucket, "reports/") == [
        "reports/2026/11/day one.html",
        "reports/2026/11/day one.json",
    ]
    assert outcome.report.source.location == f"s3://{data_bucket}/incoming/2026/11/day one.csv"


def test_a_custom_layout_is_honoured(s3: S3Client, data_bucket: str, model: ModelSource) -> None:
    layout = OutputLayout(
        input_prefix="in/",
        predictions_prefix="out/p/",
        errors_prefix="out/e/",
        reports_prefix="out/r/",
    )
    _put(s3, data_bucket, "in/a.CSV", _iris_csv())

    score_s3_object(s3, data_bucket, "in/a.CSV", model, layout=layout)

    assert keys_under(s3, data_bucket, "out/") == [
        "out/e/a.csv",
        "out/p/a.csv",
        "out/r/a.html",
        "out/r/a.json",
    ]


def test_a_bom_and_crlf_object_scores_like_a_plain_one(
    s3: S3Client, data_bucket: str, model: ModelSource
) -> None:
    plain = _iris_csv(BAD_ROWS)
    windows = b"\xef\xbb\xbf" + plain.replace("\n", "\r\n").encode()
    _put(s3, data_bucket, "incoming/plain.csv", plain)
    _put(s3, data_bucket, "incoming/windows.csv", windows)

    a = score_s3_object(s3, data_bucket, "incoming/plain.csv", model).report
    b = score_s3_object(s3, data_bucket, "incoming/windows.csv", model).report

    assert (a.rows_in, a.rows_scored, a.rows_failed) == (b.rows_in, b.rows_scored, b.rows_failed)
    assert read_object(s3, data_bucket, "predictions/windows.csv") == read_object(
        s3, data_bucket, "predictions/plain.csv"
    )
    assert read_object(s3, data_bucket, "errors/windows.csv") == read_object(
        s3, data_bucket, "errors/plain.csv"
    )


def test_a_rejected_object_gets_a_report_and_no_outputs(
    s3: S3Client, data_bucket: str, model: ModelSource
) -> None:
    _put(s3, data_bucket, "incoming/bad.csv", "id,sepal_length,sepal_width\n1,2,3\n")

    outcome = score_s3_object(s3, data_bucket, "incoming/bad.csv", model)

    assert outcome.duplicate is False
    assert outcome.report.status == "rejected"
    assert outcome.report.reason is not None
    assert "petal_length, petal_width" in outcome.report.reason
    assert outcome.report.model == ModelRef(name="iris", version="1")
    assert keys_under(s3, data_bucket) == [
        "incoming/bad.csv",
        "reports/bad.html",
        "reports/bad.json",
    ]
    assert _report(s3, data_bucket, "reports/bad.json") == outcome.report
    assert pending_uploads(s3, data_bucket) == []


def test_a_key_whose_outputs_would_be_too_long_is_refused_not_retried(
    s3: S3Client, data_bucket: str, model: ModelSource, operations: list[str]
) -> None:
    """1,024 bytes is a legal key; predictions/... of it is not (KeyTooLong, retries, DLQ)."""
    key = "incoming/" + "k" * (1024 - len("incoming/") - len(".csv")) + ".csv"
    assert len(key) == 1024
    _put(s3, data_bucket, key, "id,sepal_length,sepal_width,petal_length,petal_width\n")

    outcome = score_s3_object(s3, data_bucket, key, model)

    assert outcome.report.status == "rejected"
    assert outcome.report.reason is not None
    assert "longer than S3's 1024 bytes: predictions (1027 bytes)" in outcome.report.reason
    report_key = "reports/" + "k" * (1024 - len("incoming/") - len(".csv"))
    assert keys_under(s3, data_bucket, "reports/") == [f"{report_key}.html", f"{report_key}.json"]
    assert not WRITES & set(operations) - {"PutObject"}  # the report and its page, nothing else


def test_a_key_with_control_characters_is_refused_not_retried(
    s3: S3Client, data_bucket: str, model: ModelSource
) -> None:
    key = "incoming/tab\there.csv"
    _put(s3, data_bucket, key, "id,sepal_length,sepal_width,petal_length,petal_width\n")

    outcome = score_s3_object(s3, data_bucket, key, model)

    assert outcome.report.status == "rejected"
    assert outcome.report.reason is not None
    assert "control characters" in outcome.report.reason
    assert keys_under(s3, data_bucket, "predictions/") == []


def test_an_object_that_is_not_utf8_is_rejected(
    s3: S3Client, data_bucket: str, model: ModelSource
) -> None:
    _put(
        s3,
        data_bucket,
        "incoming/latin1.csv",
        _iris_csv().encode() + "x,é,1,1,1\n".encode("latin-1"),
    )

    report = score_s3_object(s3, data_bucket, "incoming/latin1.csv", model).report

    assert report.status == "rejected"
    assert report.reason is not None
    assert "UTF-8" in report.reason
    assert keys_under(s3, data_bucket) == [
        "incoming/latin1.csv",
        "reports/latin1.html",
        "reports/latin1.json",
    ]


# -- idempotency ---------------------------------------------------------------------------


def test_a_repeated_event_does_no_second_scoring(
    s3: S3Client, data_bucket: str, model: ModelSource, operations: list[str]
) -> None:
    _put(s3, data_bucket, "incoming/iris.csv", _iris_csv(BAD_ROWS))
    first = score_s3_object(s3, data_bucket, "incoming/iris.csv", model)
    before = _outputs_state(s3, data_bucket)
    operations.clear()
    loads: list[int] = []

    def counting_model() -> LoadedModel:
        loads.append(1)
        return model()

    again = score_s3_object(s3, data_bucket, "incoming/iris.csv", counting_model)

    assert again == Outcome(first.report, duplicate=True)
    assert not WRITES & set(operations), operations
    assert "GetObject" in operations  # the previous report, nothing else
    assert loads == []  # not even the model was needed
    assert _outputs_state(s3, data_bucket) == before


def test_a_repeated_event_for_a_rejected_object_is_a_duplicate_too(
    s3: S3Client, data_bucket: str, model: ModelSource, operations: list[str]
) -> None:
    _put(s3, data_bucket, "incoming/bad.csv", "")
    first = score_s3_object(s3, data_bucket, "incoming/bad.csv", model)
    operations.clear()

    again = score_s3_object(s3, data_bucket, "incoming/bad.csv", model)

    assert first.report.status == "rejected"
    assert again.duplicate is True
    assert again.report == first.report
    assert not WRITES & set(operations)


def test_a_new_upload_of_the_same_key_is_scored_again(
    s3: S3Client, data_bucket: str, model: ModelSource
) -> None:
    _put(s3, data_bucket, "incoming/iris.csv", _iris_csv())
    first = score_s3_object(s3, data_bucket, "incoming/iris.csv", model)
    second_put = _put(s3, data_bucket, "incoming/iris.csv", _iris_csv(BAD_ROWS))

    second = score_s3_object(s3, data_bucket, "incoming/iris.csv", model)

    assert first.report.rows_in == 150
    assert second.duplicate is False
    assert (second.report.rows_in, second.report.rows_failed) == (152, 2)
    assert second.report.source.etag == second_put["ETag"].strip('"')
    assert _report(s3, data_bucket, "reports/iris.json") == second.report
    assert len(parse_errors(read_object(s3, data_bucket, "errors/iris.csv"))) == 2
    assert len(parse_csv(read_object(s3, data_bucket, "predictions/iris.csv"))) == 151


def test_a_new_version_in_a_versioned_bucket_is_scored_again_even_with_the_same_bytes(
    s3: S3Client, data_bucket: str, model: ModelSource
) -> None:
    s3.put_bucket_versioning(Bucket=data_bucket, VersioningConfiguration={"Status": "Enabled"})
    first_put = _put(s3, data_bucket, "incoming/iris.csv", _iris_csv())
    score_s3_object(s3, data_bucket, "incoming/iris.csv", model, version_id=first_put["VersionId"])
    second_put = _put(s3, data_bucket, "incoming/iris.csv", _iris_csv())

    again = score_s3_object(
        s3, data_bucket, "incoming/iris.csv", model, version_id=second_put["VersionId"]
    )
    repeat = score_s3_object(
        s3, data_bucket, "incoming/iris.csv", model, version_id=second_put["VersionId"]
    )

    assert again.duplicate is False
    assert again.report.source.version_id == second_put["VersionId"]
    assert repeat.duplicate is True


def test_a_late_redelivery_for_an_older_version_does_no_work(
    s3: S3Client, data_bucket: str, model: ModelSource, operations: list[str]
) -> None:
    s3.put_bucket_versioning(Bucket=data_bucket, VersioningConfiguration={"Status": "Enabled"})
    old = _put(s3, data_bucket, "incoming/iris.csv", _iris_csv())
    score_s3_object(s3, data_bucket, "incoming/iris.csv", model, version_id=old["VersionId"])
    new = _put(s3, data_bucket, "incoming/iris.csv", _iris_csv(BAD_ROWS))
    score_s3_object(s3, data_bucket, "incoming/iris.csv", model, version_id=new["VersionId"])
    latest = _outputs_state(s3, data_bucket)
    operations.clear()

    redelivered = score_s3_object(
        s3, data_bucket, "incoming/iris.csv", model, version_id=old["VersionId"]
    )

    assert redelivered.duplicate is True
    assert not WRITES & set(operations)
    assert _outputs_state(s3, data_bucket) == latest


def test_an_event_for_an_overwritten_version_is_skipped_without_writes(
    s3: S3Client, data_bucket: str, model: ModelSource, operations: list[str]
) -> None:
    s3.put_bucket_versioning(Bucket=data_bucket, VersioningConfiguration={"Status": "Enabled"})
    old = _put(s3, data_bucket, "incoming/iris.csv", _iris_csv())
    new = _put(s3, data_bucket, "incoming/iris.csv", _iris_csv(BAD_ROWS))
    operations.clear()
    loads: list[int] = []

    def counting_model() -> LoadedModel:
        loads.append(1)
        return model()

    skipped = score_s3_object(
        s3, data_bucket, "incoming/iris.csv", counting_model, version_id=old["VersionId"]
    )
    skip_operations = list(operations)
    newest = score_s3_object(
        s3, data_bucket, "incoming/iris.csv", model, version_id=new["VersionId"]
    )

    assert skipped.duplicate is True
    assert skipped.report.reason is not None
    assert "superseded" in skipped.report.reason
    assert skipped.report.source.version_id == old["VersionId"]
    assert loads == []
    assert not WRITES & set(skip_operations), skip_operations
    assert newest.duplicate is False
    assert newest.report.source.version_id == new["VersionId"]
    assert _report(s3, data_bucket, "reports/iris.json") == newest.report


def test_an_event_for_a_version_whose_key_was_deleted_ends_with_a_trace(
    s3: S3Client, data_bucket: str, model: ModelSource
) -> None:
    s3.put_bucket_versioning(Bucket=data_bucket, VersioningConfiguration={"Status": "Enabled"})
    put = _put(s3, data_bucket, "incoming/iris.csv", _iris_csv())
    s3.delete_object(Bucket=data_bucket, Key="incoming/iris.csv")  # a delete marker on top

    try:
        outcome = score_s3_object(
            s3, data_bucket, "incoming/iris.csv", model, version_id=put["VersionId"]
        )
    except ModelStoreError:
        # Raising is fine if a failed report says why, as for any unreadable object.
        assert _report(s3, data_bucket, "reports/iris.json").status == "failed"
    else:
        assert outcome.report.source.version_id == put["VersionId"]


# -- failures that are not about rows ------------------------------------------------------


class _FailingRaw(io.RawIOBase):
    """A response body that delivers LIMIT bytes and then loses the connection."""

    def __init__(self, body: Any, limit: int) -> None:
        self._body = body
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            raise ConnectionResetError("connection reset by peer (test)")
        data = self._body.read(min(len(buffer), self._left, 4096))
        self._left -= len(data)
        buffer[: len(data)] = data
        return len(data)


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Output sinks upload a part every 4 KiB instead of every 8 MiB."""
    monkeypatch.setattr(
        model_store.batch.s3, "S3MultipartSink", functools.partial(S3MultipartSink, part_size=4096)
    )


def _break_source_after(
    monkeypatch: pytest.MonkeyPatch, s3: S3Client, key: str, limit: int
) -> None:
    real_get_object = s3.get_object

    def get_object(**kwargs: Any) -> Any:
        response: Any = real_get_object(**kwargs)
        if kwargs["Key"] == key:
            response["Body"] = io.BufferedReader(_FailingRaw(response["Body"], limit))
        return response

    monkeypatch.setattr(s3, "get_object", get_object)


@pytest.mark.usefixtures("small_parts")
def test_the_source_failing_mid_file_leaves_no_partial_outputs(
    s3: S3Client,
    data_bucket: str,
    model: ModelSource,
    operations: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    content = _iris_csv(BAD_ROWS * 20, repeat=8)  # ~40 KB in, ~150 KB of predictions
    _put(s3, data_bucket, "incoming/big.csv", content)
    _break_source_after(monkeypatch, s3, "incoming/big.csv", limit=len(content) * 2 // 3)

    with pytest.raises(ConnectionResetError):
        score_s3_object(s3, data_bucket, "incoming/big.csv", model, chunk_rows=50)

    assert operations.count("UploadPart") >= 3  # the outputs really were on their way
    assert "CompleteMultipartUpload" not in operations
    assert "AbortMultipartUpload" in operations
    assert keys_under(s3, data_bucket) == [
        "incoming/big.csv",
        "reports/big.html",
        "reports/big.json",
    ]
    assert pending_uploads(s3, data_bucket) == []
    report = _report(s3, data_bucket, "reports/big.json")
    assert report.status == "failed"
    assert report.reason is not None
    assert report.reason.startswith("scoring stopped: ConnectionResetError")
    assert report.model == ModelRef(name="iris", version="1")
    assert report.outputs == {}


@pytest.mark.usefixtures("small_parts")
def test_an_upload_failing_mid_file_leaves_no_partial_outputs(
    s3: S3Client, data_bucket: str, model: ModelSource, operations: list[str]
) -> None:
    content = _iris_csv(BAD_ROWS * 20, repeat=8)
    _put(s3, data_bucket, "incoming/big.csv", content)
    uploads: list[int] = []

    def fail_third_part(params: dict[str, Any], **_: Any) -> None:
        uploads.append(params["PartNumber"])
        if len(uploads) == 3:
            raise ClientError(
                {"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}},
                "UploadPart",
            )

    s3.meta.events.register("provide-client-params.s3.UploadPart", fail_third_part)

    with pytest.raises(
        DataBucketError, match=r"UploadPart s3://.*/predictions/big.csv failed: SlowDown"
    ):
        score_s3_object(s3, data_bucket, "incoming/big.csv", model, chunk_rows=50)

    assert "CompleteMultipartUpload" not in operations
    assert keys_under(s3, data_bucket) == [
        "incoming/big.csv",
        "reports/big.html",
        "reports/big.json",
    ]
    assert pending_uploads(s3, data_bucket) == []
    report = _report(s3, data_bucket, "reports/big.json")
    assert report.status == "failed"
    assert report.reason is not None
    assert "SlowDown" in report.reason


@pytest.fixture
def moto_accepts_small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the in-process moto server complete uploads of 4 KiB parts (S3 wants 5 MiB)."""
    import moto.s3.models

    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 4096)


@pytest.mark.usefixtures("small_parts", "moto_accepts_small_parts")
def test_outputs_uploaded_in_parts_are_complete_once_committed(
    s3: S3Client,
    data_bucket: str,
    model: ModelSource,
    operations: list[str],
    tmp_path: Path,
    loaded_model: LoadedModel,
) -> None:
    content = _iris_csv(BAD_ROWS * 100, repeat=8)
    _put(s3, data_bucket, "incoming/big.csv", content)
    (tmp_path / "big.csv").write_text(content)
    local = score_file(tmp_path / "big.csv", loaded_model, tmp_path, chunk_rows=47)

    report = score_s3_object(s3, data_bucket, "incoming/big.csv", model, chunk_rows=47).report

    assert operations.count("UploadPart") >= 10
    assert operations.count("CompleteMultipartUpload") == 2  # predictions and errors
    assert (report.rows_in, report.rows_scored, report.rows_failed) == (1400, 1200, 200)
    assert local.rows_in == 1400
    # Every byte arrives, in order, the last partial part included: S3 = local file.
    predictions = read_object(s3, data_bucket, "predictions/big.csv")
    assert predictions == (tmp_path / "big.predictions.csv").read_text()
    assert [int(row[-1]) for row in parse_csv(predictions)[1:]] == list(range(2, 1202))
    errors = read_object(s3, data_bucket, "errors/big.csv")
    assert errors == (tmp_path / "big.errors.csv").read_text()
    assert [int(e["line"]) for e in parse_errors(errors)] == list(range(1202, 1402))
    assert pending_uploads(s3, data_bucket) == []


@pytest.mark.usefixtures("small_parts", "moto_accepts_small_parts")
def test_a_failed_object_is_scored_again_on_retry(
    s3: S3Client, data_bucket: str, model: ModelSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = _iris_csv(repeat=4)
    _put(s3, data_bucket, "incoming/big.csv", content)
    with monkeypatch.context() as patch:
        _break_source_after(patch, s3, "incoming/big.csv", limit=len(content) // 2)
        with pytest.raises(ConnectionResetError):
            score_s3_object(s3, data_bucket, "incoming/big.csv", model, chunk_rows=50)

    retried = score_s3_object(s3, data_bucket, "incoming/big.csv", model, chunk_rows=50)

    assert retried.duplicate is False
    assert retried.report.status == "succeeded"
    assert retried.report.rows_scored == 600
    assert len(parse_csv(read_object(s3, data_bucket, "predictions/big.csv"))) == 601
    assert read_object(s3, data_bucket, "errors/big.csv") == ERRORS_HEADER
    assert pending_uploads(s3, data_bucket) == []


def test_no_model_raises_after_a_failed_report(
    s3: S3Client, data_bucket: str, registry_bucket: str
) -> None:
    empty = open_registry(f"s3://{registry_bucket}/{REGISTRY_PREFIX}", s3_client=s3)
    loader = ModelLoader(empty, "iris", cache_dir=None)
    _put(s3, data_bucket, "incoming/iris.csv", _iris_csv())

    with pytest.raises(ModelUnavailableError, match=r"iris@production"):
        score_s3_object(s3, data_bucket, "incoming/iris.csv", loader.get)

    assert keys_under(s3, data_bucket) == [
        "incoming/iris.csv",
        "reports/iris.html",
        "reports/iris.json",
    ]
    report = _report(s3, data_bucket, "reports/iris.json")
    assert report.status == "failed"
    assert report.reason is not None
    assert report.reason.startswith("no model: ")
    assert report.model is None
    assert report.source.etag  # what was not scored is named


def test_a_failed_report_does_not_count_as_done(
    s3: S3Client, data_bucket: str, registry_bucket: str, iris_artifact: Any
) -> None:
    registry = open_registry(f"s3://{registry_bucket}/{REGISTRY_PREFIX}", s3_client=s3)
    _put(s3, data_bucket, "incoming/iris.csv", _iris_csv())
    with pytest.raises(ModelStoreError):
        score_s3_object(s3, data_bucket, "incoming/iris.csv", ModelLoader(registry, "iris").get)
    registry.publish(iris_artifact, name="iris", version="7")
    registry.promote("iris", "7")

    retried = score_s3_object(
        s3, data_bucket, "incoming/iris.csv", ModelLoader(registry, "iris", cache_dir=None).get
    )

    assert retried.duplicate is False
    assert retried.report.status == "succeeded"
    assert retried.report.model == ModelRef(name="iris", version="7")


def test_a_missing_source_object_raises_after_a_failed_report(
    s3: S3Client, data_bucket: str, model: ModelSource
) -> None:
    loads: list[int] = []

    def counting_model() -> LoadedModel:
        loads.append(1)
        return model()

    with pytest.raises(DataBucketError, match=r"HeadObject s3://.*/incoming/gone.csv failed: 404"):
        score_s3_object(s3, data_bucket, "incoming/gone.csv", counting_model)

    assert loads == []
    assert keys_under(s3, data_bucket) == ["reports/gone.html", "reports/gone.json"]
    report = _report(s3, data_bucket, "reports/gone.json")
    assert report.status == "failed"
    assert report.source.location == f"s3://{data_bucket}/incoming/gone.csv"
    assert report.source.etag is None
    assert report.reason is not None
    assert "404" in report.reason or "Not Found" in report.reason
