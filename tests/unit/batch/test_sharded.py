"""The sharded run's steps against a moto server: the switch, the idempotent start, plan,
shard scoring and merge equal to one pass, and what a failure leaves (nothing).

The steps are called as the state machine calls them (the same StepInput payloads); the
state machine itself runs in the local end-to-end test (tests/e2e/test_sharded.py).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest

from model_store.batch import BatchReport, score_s3_object
from model_store.batch.handover import ShardedObject, Sharding, execution_name, start_execution
from model_store.batch.report import ModelRef
from model_store.batch.s3 import OutputLayout
from model_store.batch.sharded import (
    PlannedRun,
    StepInput,
    fail_run,
    merge_run,
    plan_run,
    score_shard,
)
from model_store.gate import LoadedModel
from tests.support.batch_files import csv_text, iris_table
from tests.support.s3 import keys_under, pending_uploads, read_object
from tests.support.state_machines import trivial_state_machine

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_stepfunctions import SFNClient

VARYING = {"duration_seconds", "rows_per_second", "execution", "started_at"}
KEY = "incoming/big.csv"


def _iris_bytes(repeat: int = 3, extra: str = "") -> bytes:
    table = iris_table()
    rows = [*table.rows * repeat]
    rows[7] = ["bad", "5.1", "oops", "1.4", "0.2"]
    rows[200] = ["short", "5.1"]
    text = csv_text(table.header, rows, newline="\r\n")
    return (text + extra).encode()


def _put(s3: S3Client, bucket: str, key: str, body: bytes) -> ShardedObject:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    put = s3.put_object(Bucket=bucket, Key=key, Body=body)
    return ShardedObject(
        bucket=bucket,
        key=key,
        version_id=put.get("VersionId"),
        etag=put["ETag"].strip('"'),
        size=len(body),
        outputs=OutputLayout().keys(key),
        started_at="2026-12-01T00:00:00Z",
    )


def _run_steps(
    s3: S3Client, target: ShardedObject, model: LoadedModel, *, shard_rows: int
) -> tuple[PlannedRun, BatchReport | None]:
    """Plan, score every shard, merge: what the state machine does on success."""
    ref = ModelRef(name=model.name, version=model.version)
    step = StepInput(run="run-1", object=target)
    planned = plan_run(s3, step, ref, chunk_rows=50, shard_rows=shard_rows, concurrency=4)
    if planned.outcome != "scored":
        return planned, None
    items = json.loads(read_object(s3, target.bucket, planned.items_key))
    assert [item["index"] for item in items] == list(range(planned.shards))
    for item in items:
        shard_step = StepInput.model_validate(
            {
                "run": "run-1",
                "object": target.model_dump(mode="json"),
                "plan": planned.model_dump(),
                "shard": item,
            }
        )
        score_shard(s3, shard_step, model, drift_threshold=0.2, neutralise_formulas=True)
    merged = StepInput(run="run-1", object=target, plan=planned)
    return planned, merge_run(s3, merged)


def _outputs(s3: S3Client, bucket: str) -> dict[str, str]:
    return {
        key: read_object(s3, bucket, key)
        for key in keys_under(s3, bucket)
        if not key.startswith("incoming/") and not key.endswith(".html")
    }


def test_sharded_outputs_and_report_equal_one_pass(
    s3: S3Client, data_bucket: str, loaded_model: LoadedModel
) -> None:
    data = _iris_bytes()
    target = _put(s3, data_bucket, KEY, data)
    single = score_s3_object(
        s3, data_bucket, KEY, lambda: loaded_model, version_id=target.version_id, chunk_rows=50
    ).report
    expected = _outputs(s3, data_bucket)
    for key in list(expected):
        s3.delete_object(Bucket=data_bucket, Key=key)

    planned, report = _run_steps(s3, target, loaded_model, shard_rows=97)

    assert planned.shards == 5
    assert planned.concurrency == 4
    assert report is not None
    assert report.execution == "run-1"
    actual = _outputs(s3, data_bucket)
    assert actual.keys() == expected.keys()
    for key in ("predictions/big.csv", "errors/big.csv"):
        assert actual[key] == expected[key], key
    assert report.model_dump(exclude=VARYING) == single.model_dump(exclude=VARYING)
    assert keys_under(s3, data_bucket, "staging/") == []  # removed after the merge
    assert pending_uploads(s3, data_bucket) == []


def test_a_file_the_plan_cannot_cut_gets_a_rejected_report_and_no_outputs(
    s3: S3Client, data_bucket: str, loaded_model: LoadedModel
) -> None:
    target = _put(s3, data_bucket, KEY, _iris_bytes(extra='row-x,1,2,3,"4\n5.0,1\n'))

    planned, _report = _run_steps(s3, target, loaded_model, shard_rows=50)

    assert planned.outcome == "rejected"
    written = BatchReport.model_validate_json(read_object(s3, data_bucket, "reports/big.json"))
    assert written.status == "rejected"
    assert written.reason is not None
    assert "quote" in written.reason
    assert written.reason is not None
    assert re.search(r"line \d+", written.reason)
    assert keys_under(s3, data_bucket, "predictions/") == []
    assert keys_under(s3, data_bucket, "staging/") == []


def test_a_shard_that_is_not_utf8_rejects_the_whole_file_and_leaves_nothing(
    s3: S3Client, data_bucket: str, loaded_model: LoadedModel
) -> None:
    lines = _iris_bytes().split(b"\r\n")
    lines[400] = b"\xff" + lines[400]
    data = b"\r\n".join(lines)

    planned, report = _run_steps(s3, _put(s3, data_bucket, KEY, data), loaded_model, shard_rows=60)

    assert planned.shards > 2
    assert report is not None
    assert report.status == "rejected"
    assert report.reason is not None
    assert "not UTF-8" in report.reason
    assert keys_under(s3, data_bucket, "predictions/") == []
    assert keys_under(s3, data_bucket, "errors/") == []
    assert keys_under(s3, data_bucket, "staging/") == []


def test_a_failed_run_leaves_a_failed_report_no_outputs_no_staging_no_uploads(
    s3: S3Client, data_bucket: str, loaded_model: LoadedModel
) -> None:
    target = _put(s3, data_bucket, KEY, _iris_bytes())
    ref = ModelRef(name=loaded_model.name, version=loaded_model.version)
    planned = plan_run(
        s3, StepInput(run="run-2", object=target), ref, chunk_rows=50, shard_rows=100
    )
    first = json.loads(read_object(s3, data_bucket, planned.items_key))[0]
    score_shard(
        s3,
        StepInput(run="run-2", object=target, plan=planned, shard=first),
        loaded_model,
        drift_threshold=0.2,
        neutralise_formulas=True,
    )
    # A merge stopped mid-way (its Lambda timed out) leaves an upload open.
    s3.create_multipart_upload(Bucket=data_bucket, Key="predictions/big.csv")
    error = {"Error": "States.TaskFailed", "Cause": json.dumps({"errorMessage": "boom"})}

    report = fail_run(s3, StepInput(run="run-2", object=target, plan=planned, error=error))

    assert report.status == "failed"
    assert report.reason == "sharded scoring failed: States.TaskFailed: boom"
    assert report.execution == "run-2"
    written = BatchReport.model_validate_json(read_object(s3, data_bucket, "reports/big.json"))
    assert written == report
    assert keys_under(s3, data_bucket, "staging/") == []
    assert keys_under(s3, data_bucket, "predictions/") == []
    assert pending_uploads(s3, data_bucket) == []


# -- the switch -------------------------------------------------------------------------


class _Starts:
    """A stand-in for StartExecution that records what it was asked to start."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, payload: dict[str, Any]) -> str:
        self.calls.append((name, payload))
        return name


def test_a_csv_over_the_threshold_is_handed_to_a_sharded_run_once(
    s3: S3Client, data_bucket: str, loaded_model: LoadedModel
) -> None:
    data = _iris_bytes()
    target = _put(s3, data_bucket, KEY, data)
    starts = _Starts()
    sharding = Sharding(above_bytes=len(data) - 1, start=starts)

    def no_model() -> LoadedModel:
        raise AssertionError("a handed-over file loads no model")

    first = score_s3_object(
        s3, data_bucket, KEY, no_model, version_id=target.version_id, sharding=sharding
    )
    again = score_s3_object(
        s3, data_bucket, KEY, no_model, version_id=target.version_id, sharding=sharding
    )

    assert first.report.status == "running"
    assert not first.duplicate
    assert again.duplicate
    assert again.report == first.report
    name = first.report.execution
    assert name == execution_name(data_bucket, KEY, target.version_id, target.etag)
    # Both events ask for the same name: Step Functions starts it once.
    assert [call[0] for call in starts.calls] == [name, name]
    payload = ShardedObject.model_validate(starts.calls[0][1]["object"])
    assert (payload.key, payload.version_id, payload.size) == (KEY, target.version_id, len(data))
    assert payload.outputs == OutputLayout().keys(KEY)
    written = BatchReport.model_validate_json(read_object(s3, data_bucket, "reports/big.json"))
    assert written.status == "running"
    assert written.execution == name
    assert keys_under(s3, data_bucket, "predictions/") == []


def test_a_csv_at_the_threshold_and_a_gzip_over_it_are_not_sharded(
    s3: S3Client, data_bucket: str, loaded_model: LoadedModel
) -> None:
    import gzip

    data = _iris_bytes()
    _put(s3, data_bucket, KEY, data)
    zipped = gzip.compress(data, mtime=0)
    _put(s3, data_bucket, "incoming/big.csv.gz", zipped)
    starts = _Starts()

    small = score_s3_object(
        s3,
        data_bucket,
        KEY,
        lambda: loaded_model,
        sharding=Sharding(above_bytes=len(data), start=starts),
    )
    packed = score_s3_object(
        s3,
        data_bucket,
        "incoming/big.csv.gz",
        lambda: loaded_model,
        sharding=Sharding(above_bytes=1, start=starts),
        max_gzip_bytes=len(zipped) - 1,
    )

    assert small.report.status == "succeeded"
    assert packed.report.status == "rejected"
    assert packed.report.reason is not None
    assert "gzip cannot be split" in packed.report.reason
    assert f"{len(zipped) - 1:,}-byte limit" in packed.report.reason
    assert starts.calls == []


# -- names and the idempotent start -----------------------------------------------------


def test_execution_names_are_per_object_version_and_within_the_limit() -> None:
    name = execution_name("bucket", "incoming/a b/" + "x" * 900 + ".csv", "v1", "e")
    assert len(name) <= 80
    assert re.fullmatch(r"[A-Za-z0-9_-]+", name)
    assert name == execution_name("bucket", "incoming/a b/" + "x" * 900 + ".csv", "v1", "e")
    assert name != execution_name("bucket", "incoming/a b/" + "x" * 900 + ".csv", "v2", "e")
    assert name != execution_name("other", "incoming/a b/" + "x" * 900 + ".csv", "v1", "e")
    rerun = execution_name("bucket", "k.csv", "v1", "e", attempt="20261201T000000")
    assert rerun.endswith("-20261201T000000")
    assert len(rerun) <= 80


@pytest.fixture
def sfn(moto_endpoint: str) -> SFNClient:
    import boto3

    client: SFNClient = boto3.client("stepfunctions", endpoint_url=moto_endpoint)
    return client


@pytest.fixture
def state_machine(sfn: SFNClient) -> str:
    return trivial_state_machine(sfn)


def test_a_repeated_start_of_a_running_execution_starts_nothing(
    sfn: SFNClient, state_machine: str
) -> None:
    first = start_execution(sfn, state_machine, "run-a", {"object": 1})
    again = start_execution(sfn, state_machine, "run-a", {"object": 1})

    assert first == again == "run-a"
    listed = sfn.list_executions(stateMachineArn=state_machine)["executions"]
    assert [e["name"] for e in listed] == ["run-a"]


def test_a_start_after_the_named_run_is_over_gets_a_fresh_name(
    sfn: SFNClient, state_machine: str
) -> None:
    start_execution(sfn, state_machine, "run-b", {"object": 1})
    arn = state_machine.replace(":stateMachine:", ":execution:") + ":run-b"
    sfn.stop_execution(executionArn=arn)

    used = start_execution(sfn, state_machine, "run-b", {"object": 1})

    assert used.startswith("run-b-")
    assert used != "run-b"
    names = {e["name"] for e in sfn.list_executions(stateMachineArn=state_machine)["executions"]}
    assert names == {"run-b", used}
