"""`model-store rescore`: a deliberate new sharded run of a data-bucket CSV, on moto."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import boto3
import pytest

from model_store.batch.handover import ShardedObject, execution_name
from model_store.batch.report import BatchReport
from tests.support.cli import run
from tests.support.s3 import keys_under, new_bucket, read_object
from tests.support.state_machines import trivial_state_machine

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_stepfunctions import SFNClient

KEY = "incoming/big.csv"


@pytest.fixture
def state_machine(moto_endpoint: str) -> str:
    sfn: SFNClient = boto3.client("stepfunctions", endpoint_url=moto_endpoint)
    return trivial_state_machine(sfn)


def test_rescore_starts_a_new_named_run_and_writes_its_running_report(
    s3: S3Client, moto_endpoint: str, state_machine: str
) -> None:
    bucket = new_bucket(s3, "data")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    put = s3.put_object(Bucket=bucket, Key=KEY, Body=b"a,b\n1,2\n")
    env = {"AWS_ENDPOINT_URL": moto_endpoint}

    first = run(
        "rescore", f"s3://{bucket}/{KEY}", "--state-machine", state_machine, "--json", env=env
    )
    second = run("rescore", f"s3://{bucket}/{KEY}", "--state-machine", state_machine, env=env)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    report = BatchReport.model_validate_json(first.stdout)
    assert report.status == "running"
    assert report.source.version_id == put["VersionId"]
    # Not the name the S3 event's run had: that one may be used for 90 days.
    usual = execution_name(bucket, KEY, put["VersionId"], put["ETag"].strip('"'))
    assert report.execution is not None
    assert report.execution != usual
    assert report.execution.startswith(usual + "-rerun-")
    sfn = boto3.client("stepfunctions", endpoint_url=moto_endpoint)
    executions = sfn.list_executions(stateMachineArn=state_machine)["executions"]
    assert report.execution in {e["name"] for e in executions}
    started = sfn.describe_execution(
        executionArn=next(e["executionArn"] for e in executions if e["name"] == report.execution)
    )
    target = ShardedObject.model_validate(json.loads(started["input"])["object"])
    assert (target.bucket, target.key, target.size) == (bucket, KEY, 8)
    assert target.outputs["report"] == "reports/big.json"
    assert "started" in second.stdout
    written = BatchReport.model_validate_json(read_object(s3, bucket, "reports/big.json"))
    assert written.status == "running"


@pytest.mark.parametrize("location", ["big.csv", "s3://bucket-only", "s3://bucket/folder/"])
def test_rescore_refuses_what_is_not_an_object_location(location: str, state_machine: str) -> None:
    result = run("rescore", location, "--state-machine", state_machine)

    assert result.returncode == 2
    assert "error: expected s3://BUCKET/KEY of a CSV" in result.stderr


def test_rescoring_a_missing_object_exits_1_naming_it_and_writes_no_report(
    s3: S3Client, moto_endpoint: str, state_machine: str
) -> None:
    bucket = new_bucket(s3, "data")

    result = run(
        "rescore",
        f"s3://{bucket}/{KEY}",
        "--state-machine",
        state_machine,
        env={"AWS_ENDPOINT_URL": moto_endpoint},
    )

    assert result.returncode == 1
    assert f"s3://{bucket}/{KEY}" in result.stderr
    assert "HeadObject" in result.stderr
    assert keys_under(s3, bucket, "") == []
