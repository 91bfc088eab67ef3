"""CSV files dropped into the data bucket, scored by the batch function via S3 events."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence

import pytest

from devstack.stack import LocalStack
from tests.support.local_stack import data_bucket_of, model_record

pytestmark = pytest.mark.slow


def wait_for_object(stack: LocalStack, key: str, timeout: float = 60) -> bytes:
    s3 = stack.client("s3")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            body: bytes = s3.get_object(Bucket=data_bucket_of(stack), Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            time.sleep(0.25)
            continue
        return body
    pytest.fail(f"s3://{data_bucket_of(stack)}/{key} did not appear within {timeout} s")


def csv_text(rows: Sequence[Sequence[object]]) -> str:
    header = ",".join(model_record())
    return "\n".join([header, *(",".join(str(v) for v in row) for row in rows)]) + "\n"


def test_a_csv_dropped_into_incoming_gets_predictions_errors_and_a_report_that_add_up(
    stack: LocalStack,
) -> None:
    stem = f"e2e-{uuid.uuid4().hex[:8]}"
    good: list[list[object]] = [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5], [5.8, 2.7, 4.1, 1.0]]
    bad: list[list[object]] = [["oops", 3.0, 1.0, 0.2], [5.0, 3.0]]
    stack.client("s3").put_object(
        Bucket=data_bucket_of(stack),
        Key=f"incoming/{stem}.csv",
        Body=csv_text([*good, *bad]).encode(),
    )

    report = json.loads(wait_for_object(stack, f"reports/{stem}.json"))
    predictions = wait_for_object(stack, f"predictions/{stem}.csv").decode().splitlines()
    errors = wait_for_object(stack, f"errors/{stem}.csv").decode().splitlines()

    assert report["status"] == "succeeded"
    assert report["rows_in"] == len(good) + len(bad)
    assert report["rows_scored"] == len(good)
    assert report["rows_failed"] == len(bad)
    assert report["rows_in"] == report["rows_scored"] + report["rows_failed"]
    assert len(predictions) - 1 == report["rows_scored"]  # one header line
    assert len(errors) - 1 == report["rows_failed"]
    assert "setosa" in predictions[1]


def test_what_is_dropped_where_gets_scored_refused_or_ignored_and_a_new_version_is_scored(
    stack: LocalStack,
) -> None:
    s3 = stack.client("s3")
    bucket = data_bucket_of(stack)
    stem = f"e2e-{uuid.uuid4().hex[:8]}"
    body = csv_text([[5.1, 3.5, 1.4, 0.2]]).encode()
    s3.put_object(Bucket=bucket, Key=f"elsewhere/{stem}.csv", Body=body)
    s3.put_object(Bucket=bucket, Key=f"incoming/{stem}.txt", Body=body)
    s3.put_object(Bucket=bucket, Key=f"incoming/{stem}-upper.CSV", Body=body)
    key = f"incoming/{stem}.csv"
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    first = json.loads(wait_for_object(stack, f"reports/{stem}.json"))
    assert first["rows_in"] == 1
    upper = json.loads(wait_for_object(stack, f"reports/{stem}-upper.json"))
    assert (upper["status"], upper["rows_in"]) == ("succeeded", 1)
    refused = json.loads(wait_for_object(stack, f"reports/{stem}.txt.json"))
    assert refused["status"] == "rejected"
    assert "only .csv and .csv.gz files are scored" in refused["reason"]

    # A second upload of the same key is a new version: one more event, scored again.
    s3.put_object(Bucket=bucket, Key=key, Body=csv_text([[5.1, 3.5, 1.4, 0.2]] * 3).encode())
    deadline = time.monotonic() + 60
    while json.loads(wait_for_object(stack, f"reports/{stem}.json"))["rows_in"] != 3:
        assert time.monotonic() < deadline, "the second version was not scored"
        time.sleep(0.25)

    listed = s3.list_objects_v2(Bucket=bucket, Prefix="reports/")
    reports = {obj["Key"] for obj in listed.get("Contents", [])}
    # Outside incoming/ nothing runs at all.
    assert not any(k.startswith(f"reports/elsewhere/{stem}") for k in reports)
