"""The batch function's Lambda handler called as Lambda calls it, with events/s3_put.json.

The handler module is imported afresh under each test's environment (its settings and
model loader are built at import), with S3 served by the session's moto server.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

from model_store.artifact import Artifact
from model_store.registry import Registry
from tests.support.batch_files import FEATURES, csv_text, iris_table, parse_csv
from tests.support.events import load_event
from tests.support.s3 import REGISTRY_PREFIX, keys_under, read_object

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class FakeLambdaContext:
    """The attributes of the Lambda context object a Python handler receives."""

    aws_request_id: str
    function_name: str = "BatchScoringFunction"
    function_version: str = "$LATEST"
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:BatchScoringFunction"
    )
    memory_limit_in_mb: int = 1024
    log_group_name: str = "/aws/lambda/BatchScoringFunction"
    log_stream_name: str = "2026/11/23/[$LATEST]0123456789abcdef0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


@pytest.fixture
def context() -> FakeLambdaContext:
    return FakeLambdaContext(aws_request_id=str(uuid.uuid4()))


@pytest.fixture
def handler_module(
    monkeypatch: pytest.MonkeyPatch,
    moto_endpoint: str,
    registry_bucket: str,
    iris_registry: Registry,
    tmp_path: Path,
) -> Iterator[ModuleType]:
    """``batch_scoring.handler`` imported afresh with the function's environment set."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    monkeypatch.setenv("MODEL_BUCKET", registry_bucket)
    monkeypatch.setenv("MODEL_PREFIX", REGISTRY_PREFIX)
    monkeypatch.setenv("MODEL_NAME", "iris")
    monkeypatch.setenv("MODEL_ALIAS", "production")
    monkeypatch.setenv("CHUNK_ROWS", "40")
    monkeypatch.setenv("DRIFT_THRESHOLD", "0.2")
    for name in (
        "MODEL_VERSION",
        "INPUT_PREFIX",
        "PREDICTIONS_PREFIX",
        "REPORTS_PREFIX",
        "SERVING_RUNTIME",
    ):
        monkeypatch.delenv(name, raising=False)
    import batch_scoring.handler

    module = importlib.reload(batch_scoring.handler)
    module.loader.cache_dir = tmp_path / "model-cache"
    module.metrics.clear_metrics()
    yield module
    module.metrics.clear_metrics()


def _event(bucket: str, *encoded_keys: str) -> dict[str, Any]:
    """events/s3_put.json with one record per key (as S3 sends it: URL-encoded)."""
    event = load_event("s3_put.json")
    template = event["Records"][0]
    records = []
    for key in encoded_keys:
        record = json.loads(json.dumps(template))
        record["s3"]["bucket"]["name"] = bucket
        record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
        record["s3"]["object"]["key"] = key
        records.append(record)
    event["Records"] = records
    return event


def _upload(s3: S3Client, bucket: str, key: str, rows: int = 150) -> None:
    table = iris_table()
    s3.put_object(Bucket=bucket, Key=key, Body=csv_text(table.header, table.rows[:rows]).encode())


def _emf(text: str) -> list[dict[str, Any]]:
    documents = []
    for line in text.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))
    return documents


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
def test_the_sample_event_key_is_url_decoded(
    handler_module: ModuleType, s3: S3Client, data_bucket: str, context: FakeLambdaContext
) -> None:
    event = load_event("s3_put.json")
    encoded = event["Records"][0]["s3"]["object"]["key"]
    assert encoded == "incoming/iris+sample.csv"
    event["Records"][0]["s3"]["bucket"]["name"] = data_bucket
    _upload(s3, data_bucket, "incoming/iris sample.csv")

    result = handler_module.handler(event, context)

    assert result["results"] == [
        {
            "source": f"s3://{data_bucket}/incoming/iris sample.csv",
            "status": "succeeded",
            "rows_in": 150,
            "rows_scored": 150,
            "rows_failed": 0,
            "reason": None,
            "drift_flagged": [],
        }
    ]
    assert keys_under(s3, data_bucket, "predictions/") == ["predictions/iris sample.csv"]


def test_a_key_with_spaces_and_non_ascii_characters_is_decoded_and_scored(
    handler_module: ModuleType, s3: S3Client, data_bucket: str, context: FakeLambdaContext
) -> None:
    _upload(s3, data_bucket, "incoming/café menu+plus.csv", rows=20)

    result = handler_module.handler(
        _event(data_bucket, "incoming/caf%C3%A9+menu%2Bplus.csv"), context
    )

    [summary] = result["results"]
    assert summary["status"] == "succeeded"
    assert summary["source"] == f"s3://{data_bucket}/incoming/café menu+plus.csv"
    assert summary["rows_scored"] == 20
    assert keys_under(s3, data_bucket) == [
        "errors/café menu+plus.csv",
        "incoming/café menu+plus.csv",
        "predictions/café menu+plus.csv",
        "reports/café menu+plus.html",
        "reports/café menu+plus.json",
    ]
    report = json.loads(read_object(s3, data_bucket, "reports/café menu+plus.json"))
    assert report["source"]["location"] == f"s3://{data_bucket}/incoming/café menu+plus.csv"
    assert report["model"] == {"name": "iris", "version": "1"}


def test_an_event_with_two_records_scores_both(
    handler_module: ModuleType, s3: S3Client, data_bucket: str, context: FakeLambdaContext
) -> None:
    _upload(s3, data_bucket, "incoming/a.csv", rows=10)
    _upload(s3, data_bucket, "incoming/b/c.csv", rows=100)

    result = handler_module.handler(
        _event(data_bucket, "incoming/a.csv", "incoming/b/c.csv"), context
    )

    assert [(r["source"], r["status"], r["rows_scored"]) for r in result["results"]] == [
        (f"s3://{data_bucket}/incoming/a.csv", "succeeded", 10),
        (f"s3://{data_bucket}/incoming/b/c.csv", "succeeded", 100),
    ]
    assert len(parse_csv(read_object(s3, data_bucket, "predictions/a.csv"))) == 11
    assert len(parse_csv(read_object(s3, data_bucket, "predictions/b/c.csv"))) == 101


def test_a_repeated_event_reports_a_duplicate_and_changes_nothing(
    handler_module: ModuleType, s3: S3Client, data_bucket: str, context: FakeLambdaContext
) -> None:
    _upload(s3, data_bucket, "incoming/iris.csv")
    event = _event(data_bucket, "incoming/iris.csv")
    handler_module.handler(event, context)
    before = {
        key: s3.head_object(Bucket=data_bucket, Key=key)["LastModified"]
        for key in keys_under(s3, data_bucket)
    }

    result = handler_module.handler(event, FakeLambdaContext(aws_request_id=str(uuid.uuid4())))

    [summary] = result["results"]
    assert summary["status"] == "duplicate"
    assert summary["rows_scored"] == 150  # what the first delivery did
    after = {
        key: s3.head_object(Bucket=data_bucket, Key=key)["LastModified"]
        for key in keys_under(s3, data_bucket)
    }
    assert after == before


def test_a_missing_object_makes_the_handler_raise_after_the_other_records(
    handler_module: ModuleType, s3: S3Client, data_bucket: str, context: FakeLambdaContext
) -> None:
    _upload(s3, data_bucket, "incoming/there.csv", rows=30)
    event = _event(data_bucket, "incoming/gone.csv", "incoming/there.csv")

    with pytest.raises(handler_module.BatchFailedError, match=r"incoming/gone\.csv") as raised:
        handler_module.handler(event, context)

    assert "there.csv" not in str(raised.value)
    assert keys_under(s3, data_bucket, "predictions/") == ["predictions/there.csv"]
    there = json.loads(read_object(s3, data_bucket, "reports/there.json"))
    assert (there["status"], there["rows_scored"]) == ("succeeded", 30)
    gone = json.loads(read_object(s3, data_bucket, "reports/gone.json"))
    assert gone["status"] == "failed"


def test_under_onnx_a_model_without_an_onnx_form_gets_a_failed_report_and_no_outputs(
    handler_module: ModuleType,
    s3: S3Client,
    data_bucket: str,
    context: FakeLambdaContext,
    iris_registry: Registry,
    iris_artifact: Artifact,
) -> None:
    manifest = iris_artifact.manifest.model_copy(
        update={"onnx": None, "onnx_refused": "skl2onnx cannot convert it"}
    )
    iris_registry.publish(Artifact(iris_artifact.model_bytes, manifest), name="iris", version="2")
    iris_registry.promote("iris", "2")
    _upload(s3, data_bucket, "incoming/iris.csv", rows=30)

    with pytest.raises(handler_module.BatchFailedError, match="no ONNX form"):
        handler_module.handler(_event(data_bucket, "incoming/iris.csv"), context)

    assert keys_under(s3, data_bucket) == [
        "incoming/iris.csv",
        "reports/iris.html",
        "reports/iris.json",
    ]
    report = json.loads(read_object(s3, data_bucket, "reports/iris.json"))
    assert report["status"] == "failed"
    assert "iris@2 has no ONNX form (skl2onnx cannot convert it)" in report["reason"]
    assert report["rows_scored"] == 0


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
@pytest.mark.parametrize("runtime", ["onnx", "sklearn"])
def test_either_runtime_scores_the_file(
    handler_module: ModuleType,
    s3: S3Client,
    data_bucket: str,
    context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    runtime: str,
) -> None:
    monkeypatch.setenv("SERVING_RUNTIME", runtime)
    module = importlib.reload(handler_module)
    module.loader.cache_dir = tmp_path / f"cache-{runtime}"
    _upload(s3, data_bucket, "incoming/iris.csv")

    [summary] = module.handler(_event(data_bucket, "incoming/iris.csv"), context)["results"]

    assert (summary["status"], summary["rows_scored"]) == ("succeeded", 150)
    assert module.loader.current.runtime.name == runtime
    rows = parse_csv(read_object(s3, data_bucket, "predictions/iris.csv"))
    labels = [row[5] for row in rows[1:]]
    assert labels[:50] == ["setosa"] * 50


def test_records_that_are_not_s3_events_are_ignored(
    handler_module: ModuleType, s3: S3Client, data_bucket: str, context: FakeLambdaContext
) -> None:
    _upload(s3, data_bucket, "incoming/iris.csv", rows=5)
    event = _event(data_bucket, "incoming/iris.csv")
    event["Records"].insert(0, {"EventSource": "aws:sns", "Sns": {"Message": "incoming/iris.csv"}})

    result = handler_module.handler(event, context)
    nothing = handler_module.handler(
        {"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}, context
    )
    s3_test_event = handler_module.handler(
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": data_bucket}, context
    )

    assert [r["source"] for r in result["results"]] == [f"s3://{data_bucket}/incoming/iris.csv"]
    assert nothing == {"results": []}
    assert s3_test_event == {"results": []}


def test_rows_scored_and_failed_are_emitted_as_emf_metrics(
    monkeypatch: pytest.MonkeyPatch,
    handler_module: ModuleType,
    s3: S3Client,
    data_bucket: str,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(handler_module.telemetry, "cold_start", False)  # a warm environment
    table = iris_table()
    body = csv_text(table.header, [*table.rows[:12], ["x", "1", "2"]])
    s3.put_object(Bucket=data_bucket, Key="incoming/m.csv", Body=body.encode())
    event = _event(data_bucket, "incoming/m.csv")
    capsys.readouterr()

    handler_module.handler(event, context)
    first = _emf(capsys.readouterr().out)
    handler_module.handler(event, context)  # a duplicate: nothing scored, nothing emitted
    second = _emf(capsys.readouterr().out)

    [document] = first
    directive = document["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "SklearnServerless"
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
        "RowsScored": "Count",
        "RowsFailed": "Count",
    }
    assert [sorted(d) for d in directive["Dimensions"]] == [["model_version", "service"]]
    assert (document["model_version"], document["service"]) == ("1", "batch-scoring")
    assert (document["RowsScored"], document["RowsFailed"]) == ([12.0], [1.0])
    # 12 rows give no drift signal (model_store's MIN_DRIFT_ROWS): no PSI either.
    assert second == []


def _units(document: dict[str, Any]) -> dict[str, str]:
    [directive] = document["_aws"]["CloudWatchMetrics"]
    return {m["Name"]: m["Unit"] for m in directive["Metrics"]}


def _dimension_sets(document: dict[str, Any]) -> list[list[str]]:
    [directive] = document["_aws"]["CloudWatchMetrics"]
    return [sorted(names) for names in directive["Dimensions"]]


def test_the_psi_of_each_feature_is_emitted_once_per_file_by_feature(
    monkeypatch: pytest.MonkeyPatch,
    handler_module: ModuleType,
    s3: S3Client,
    data_bucket: str,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(handler_module.telemetry, "cold_start", False)
    table = iris_table(shift=1.5)  # drifted enough for some features to be flagged
    s3.put_object(
        Bucket=data_bucket,
        Key="incoming/drift.csv",
        Body=csv_text(table.header, table.rows).encode(),
    )
    event = _event(data_bucket, "incoming/drift.csv")
    capsys.readouterr()

    [summary] = handler_module.handler(event, context)["results"]
    first = _emf(capsys.readouterr().out)
    handler_module.handler(event, context)  # a duplicate: nothing emitted again
    second = _emf(capsys.readouterr().out)

    drift = json.loads(read_object(s3, data_bucket, "reports/drift.json"))["drift"]
    assert summary["drift_flagged"]  # the threshold line on the dashboard means something
    rows = [d for d in first if "RowsScored" in _units(d)]
    psi = [d for d in first if "PSI" in _units(d)]
    assert len(rows) == 1
    assert len(first) == 1 + len(FEATURES)
    # One document per feature: its dimensions are the feature's own, mixed with no other.
    assert sorted(d["feature"] for d in psi) == sorted(FEATURES)
    for document in psi:
        [directive] = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "SklearnServerless"
        assert _units(document) == {"PSI": "None"}
        assert _dimension_sets(document) == [["feature", "service"]]
        assert document["service"] == "batch-scoring"
        assert "model_version" not in document
        assert document["PSI"] == [drift["features"][document["feature"]]["psi"]]
    assert second == []


def test_the_first_invocation_of_an_environment_counts_one_cold_start(
    monkeypatch: pytest.MonkeyPatch,
    handler_module: ModuleType,
    s3: S3Client,
    data_bucket: str,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(handler_module.telemetry, "cold_start", True)  # a new environment
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", context.function_name)
    _upload(s3, data_bucket, "incoming/cold.csv", rows=10)
    capsys.readouterr()

    handler_module.handler({"Records": []}, context)  # scores nothing
    first = _emf(capsys.readouterr().out)
    handler_module.handler(_event(data_bucket, "incoming/cold.csv"), context)
    second = _emf(capsys.readouterr().out)

    [document] = first
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "SklearnServerless"
    assert _units(document) == {"ColdStart": "Count"}
    assert _dimension_sets(document) == [["function_name", "service"]]
    assert (document["function_name"], document["service"]) == (
        context.function_name,
        "batch-scoring",
    )
    assert document["ColdStart"] == [1.0]
    assert [_units(d) for d in second] == [{"RowsScored": "Count", "RowsFailed": "Count"}]


def test_the_powertools_variables_name_the_service_and_the_namespace(
    monkeypatch: pytest.MonkeyPatch,
    handler_module: ModuleType,
    s3: S3Client,
    data_bucket: str,
    context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """What the template sets (POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE) is
    what the function uses, read at import as a new execution environment reads it."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "batch-scoring-staging")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Staging/Sklearn")
    module = importlib.reload(handler_module)  # a new environment: a cold start to come
    module.loader.cache_dir = tmp_path / "env-model-cache"
    _upload(s3, data_bucket, "incoming/env.csv")
    capsys.readouterr()

    module.handler(_event(data_bucket, "incoming/env.csv"), context)

    documents = _emf(capsys.readouterr().out)
    assert module.logger.service == "batch-scoring-staging"  # every log line's "service"
    assert documents
    for document in documents:
        [directive] = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Staging/Sklearn"
        assert document["service"] == "batch-scoring-staging"
    assert {name for d in documents for name in _units(d)} == {
        "RowsScored",
        "RowsFailed",
        "PSI",
        "ColdStart",
    }


def test_the_version_id_of_the_record_is_the_version_checked(
    handler_module: ModuleType, s3: S3Client, data_bucket: str, context: FakeLambdaContext
) -> None:
    s3.put_bucket_versioning(Bucket=data_bucket, VersioningConfiguration={"Status": "Enabled"})
    table = iris_table()
    body = csv_text(table.header, table.rows[:3]).encode()
    first = s3.put_object(Bucket=data_bucket, Key="incoming/v.csv", Body=body)
    event = _event(data_bucket, "incoming/v.csv")
    event["Records"][0]["s3"]["object"]["versionId"] = first["VersionId"]

    [scored] = handler_module.handler(event, context)["results"]
    second = s3.put_object(Bucket=data_bucket, Key="incoming/v.csv", Body=body)
    [late] = handler_module.handler(event, context)["results"]  # a redelivery, now stale
    event["Records"][0]["s3"]["object"]["versionId"] = second["VersionId"]
    [newest] = handler_module.handler(event, context)["results"]

    assert (scored["status"], scored["rows_scored"]) == ("succeeded", 3)
    assert late["status"] == "duplicate"
    assert newest["status"] == "succeeded"
    report = json.loads(read_object(s3, data_bucket, "reports/v.json"))
    assert report["source"]["version_id"] == second["VersionId"]


def test_at_debug_the_sdk_logs_neither_credentials_nor_rows(
    monkeypatch: pytest.MonkeyPatch,
    handler_module: ModuleType,
    s3: S3Client,
    data_bucket: str,
    context: FakeLambdaContext,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """LogLevel=DEBUG once made botocore log request headers (the session token) and
    PutObject bodies (customer rows)."""
    token = "session-token-that-must-not-leak"
    monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    module = importlib.reload(handler_module)
    table = iris_table()
    marker = "row-that-must-not-be-logged"
    s3.put_object(
        Bucket=data_bucket,
        Key="incoming/secret.csv",
        Body=csv_text(table.header, [[marker, *table.rows[0][1:]]]).encode(),
    )
    caplog.set_level(logging.DEBUG)  # the root logger, as Lambda's LogLevel=DEBUG sets it

    result = module.handler(_event(data_bucket, "incoming/secret.csv"), context)

    assert result["results"][0]["status"] == "succeeded"
    logged = "\n".join(r.getMessage() for r in caplog.records) + capsys.readouterr().out
    assert token not in logged
    assert marker not in logged
    assert not [
        r
        for r in caplog.records
        if r.name.startswith(("botocore", "urllib3")) and r.levelno < logging.INFO
    ]


def test_while_s3_fails_the_batch_leaves_no_partial_output_and_a_retry_completes_it(
    monkeypatch: pytest.MonkeyPatch,
    handler_module: ModuleType,
    moto_endpoint: str,
    s3: S3Client,
    data_bucket: str,
    context: FakeLambdaContext,
    tmp_path: Path,
) -> None:
    from tests.support.faults import FaultyS3

    _upload(s3, data_bucket, "incoming/iris.csv", rows=120)
    with FaultyS3(moto_endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        monkeypatch.setenv("MODEL_LOAD_TIMEOUT_SECONDS", "2")
        module = importlib.reload(handler_module)
        module.loader.cache_dir = tmp_path / "cache"
        monkeypatch.setattr(time, "sleep", lambda _s: None)  # botocore's backoff, not the test's
        proxy.mode = "error"

        with pytest.raises(module.BatchFailedError, match=r"iris\.csv"):
            module.handler(_event(data_bucket, "incoming/iris.csv"), context)

        assert keys_under(s3, data_bucket) == ["incoming/iris.csv"]  # nothing half-written
        proxy.mode = "pass"  # Lambda's retry, once S3 is back
        [summary] = module.handler(_event(data_bucket, "incoming/iris.csv"), context)["results"]

    assert (summary["status"], summary["rows_scored"]) == ("succeeded", 120)
    assert keys_under(s3, data_bucket) == [
        "errors/iris.csv",
        "incoming/iris.csv",
        "predictions/iris.csv",
        "reports/iris.html",
        "reports/iris.json",
    ]


def test_the_cold_start_leaves_the_sharded_runs_steps_unimported() -> None:
    """Init imports only the hand-over: the plan, score and merge steps (and the planner
    and assembler under them) are other functions' code."""
    code = (
        "import json, sys; import batch_scoring.handler; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('model_store.batch'))))"
    )
    env = {
        **os.environ,
        "MODEL_BUCKET": "models",
        "SHARDING_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:s",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "functions" / "batch_scoring")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )

    loaded = json.loads(done.stdout)
    assert "model_store.batch.handover" in loaded
    assert {"model_store.batch.sharded", "model_store.batch.plan"}.isdisjoint(loaded)
    assert "model_store.batch.assemble" not in loaded
