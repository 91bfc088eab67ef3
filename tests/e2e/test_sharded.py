"""A file over the stack's threshold, scored in shards by the state machine: moto runs the
definition (its Distributed Map included) and the step functions run under the RIE.

The outputs and report must be what one pass writes; a file the plan cannot cut is
rejected; a repeated S3 event starts no second run.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devstack.stack import LocalStack
from model_store import Artifact
from model_store.batch.engine import score_text
from model_store.batch.inputs import csv_text
from model_store.batch.report import BatchReport, ModelRef, SourceInfo
from model_store.gate import load_artifact_dir
from tests.support.local_stack import CHUNK_ROWS, SHARD_ABOVE_BYTES, data_bucket_of, model_record

pytestmark = pytest.mark.slow

VARYING = {"duration_seconds", "rows_per_second", "execution", "started_at", "source", "model"}


def _final_report(stack: LocalStack, key: str, timeout: float = 180) -> dict[str, Any]:
    """The report once the run is over (a sharded run first writes a "running" one)."""
    s3 = stack.client("s3")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            body = s3.get_object(Bucket=data_bucket_of(stack), Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            body = b""
        if body:
            report: dict[str, Any] = json.loads(body)
            if report["status"] != "running":
                return report
        time.sleep(0.5)
    pytest.fail(f"{key} did not reach a final status within {timeout} s")


def _read(stack: LocalStack, key: str) -> bytes:
    body: bytes = (
        stack.client("s3").get_object(Bucket=data_bucket_of(stack), Key=key)["Body"].read()
    )
    return body


def _big_csv() -> bytes:
    header = ",".join([*model_record(), "note"])
    rows = []
    for i in range(300):
        values = [5.1 + (i % 7) / 10, 3.5 - (i % 5) / 10, 1.4 + (i % 11) / 3, 0.2 + (i % 3) / 2]
        note = f'"line one\nline two of {i}"' if i % 17 == 0 else f"note {i}"
        rows.append(",".join([*map(str, values), note]))
    rows[40] = "oops,3.0,1.0,0.2,bad"
    rows[123] = "5.0,3.0"
    rows[200] = ""  # a blank line
    return ("\r\n".join([header, *rows]) + "\r\n").encode()


def _one_pass(data: bytes, artifact: Artifact, directory: Path) -> tuple[bytes, bytes, BatchReport]:
    model = load_artifact_dir(artifact.write(directory), runtime="onnx")
    predictions, errors = io.BytesIO(), io.BytesIO()
    tally = score_text(
        csv_text(io.BytesIO(data), gzipped=False),
        model,
        predictions,
        errors,
        chunk_rows=CHUNK_ROWS,
    )
    report = tally.report(
        source=SourceInfo(location="local"),
        started_at=datetime.now(UTC),
        duration=1.0,
        model=ModelRef(name="iris", version="1"),
        outputs={},
    )
    return predictions.getvalue(), errors.getvalue(), report


def test_a_file_over_the_threshold_is_scored_in_shards_as_one_pass_would(
    stack: LocalStack, iris_artifact: Artifact, tmp_path: Path
) -> None:
    stem = f"sharded-{uuid.uuid4().hex[:8]}"
    data = _big_csv()
    assert len(data) > SHARD_ABOVE_BYTES
    s3 = stack.client("s3")
    s3.put_object(Bucket=data_bucket_of(stack), Key=f"incoming/{stem}.csv", Body=data)

    report = _final_report(stack, f"reports/{stem}.json")

    assert report["status"] == "succeeded", report
    assert report["execution"]
    assert report["model"] == {"name": "iris", "version": "1"}
    predictions, errors, expected = _one_pass(data, iris_artifact, tmp_path)
    assert _read(stack, f"predictions/{stem}.csv") == predictions
    assert _read(stack, f"errors/{stem}.csv") == errors
    comparable = expected.model_dump(mode="json", exclude=VARYING | {"outputs"})
    assert {k: v for k, v in report.items() if k in comparable} == comparable
    staging = s3.list_objects_v2(Bucket=data_bucket_of(stack), Prefix="staging/")
    assert staging.get("KeyCount", 0) == 0
    # The state machine ran it: one execution, named for this object, succeeded.
    sfn = stack.client("stepfunctions")
    (machine,) = stack.state_machines.values()
    executions = sfn.list_executions(stateMachineArn=machine)["executions"]
    ours = [e for e in executions if e["name"] == report["execution"]]
    assert [e["status"] for e in ours] == ["SUCCEEDED"]


def test_a_repeated_event_starts_no_second_run_and_an_unbalanced_quote_is_rejected(
    stack: LocalStack,
) -> None:
    stem = f"sharded-{uuid.uuid4().hex[:8]}"
    key = f"incoming/{stem}.csv"
    data = _big_csv() + b'5.1,3.5,1.4,0.2,"never closed\r\n5.1,3.5,1.4,0.2,x\r\n'
    s3 = stack.client("s3")
    put = s3.put_object(Bucket=data_bucket_of(stack), Key=key, Body=data)

    report = _final_report(stack, f"reports/{stem}.json")

    assert report["status"] == "rejected"
    quote_line = _big_csv().count(b"\n") + 1  # the line after the big file's last
    assert "unbalanced quote" in report["reason"]
    assert f"line {quote_line} " in report["reason"]
    assert (
        s3.list_objects_v2(Bucket=data_bucket_of(stack), Prefix=f"predictions/{stem}")["KeyCount"]
        == 0
    )
    # S3 delivers at least once: the same event again finds the report and does nothing.
    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": data_bucket_of(stack)},
                    "object": {"key": key, "versionId": put.get("VersionId"), "size": len(data)},
                },
            }
        ]
    }
    again = stack.invoke("BatchScoringFunction", event)
    assert not again.failed, again.payload
    (machine,) = stack.state_machines.values()
    names = [
        e["name"]
        for e in stack.client("stepfunctions").list_executions(stateMachineArn=machine)[
            "executions"
        ]
    ]
    assert names.count(report["execution"]) == 1
