"""devstack.moto_server: moto's Step Functions running state machines whose Lambda tasks
call devstack's Lambda Invoke endpoint.

One wrapper process for the module, on a free loopback port, its Lambda endpoint a
LocalLambdaApi over scripted fake functions (the endpoint has its own tests). The state
machine has the product's shape: a planning task, a Choice, a Distributed Map reading its
items from S3 JSON with ItemSelector, MaxConcurrencyPath, Retry and Catch, a clean-up task
and a Fail state.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from devstack.lambda_api import LocalLambdaApi
from devstack.moto_server import LAMBDA_ENDPOINT_VARIABLE
from devstack.rie import Invocation, free_port

pytestmark = pytest.mark.slow  # one moto server process for the module, ~2.5 s to start

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "sharding-data"
NAMES = {"plan-fn": "Plan", "shard-fn": "Shard", "merge-fn": "Merge"}
SHARD_SECONDS = 0.15  # long enough for concurrent shards to overlap


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


# The strict machine declares the product's ToleratedFailureCount: 0; the other lets half
# the items fail.
TOLERANCES: dict[str, dict[str, Any]] = {
    "strict": {"ToleratedFailureCount": 0},
    "tolerant": {"ToleratedFailurePercentage": 50.0},
}
RETRY_SERVICE_ERRORS = {
    "ErrorEquals": ["Lambda.ServiceException", "Lambda.TooManyRequestsException"],
    "IntervalSeconds": 1,
    "MaxAttempts": 2,
    "BackoffRate": 2,
    "JitterStrategy": "FULL",
}
CATCH_ALL = {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "CleanUp"}


def definition(tolerance: dict[str, Any]) -> dict[str, Any]:
    return {
        "StartAt": "Plan",
        "States": {
            "Plan": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {
                    "FunctionName": function_arn("plan-fn"),
                    "Payload": {"run.$": "$$.Execution.Name", "object.$": "$.object"},
                },
                "ResultSelector": {"plan.$": "$.Payload"},
                "ResultPath": "$.planned",
                "Retry": [RETRY_SERVICE_ERRORS],
                "Catch": [CATCH_ALL],
                "Next": "Planned",
            },
            "Planned": {
                "Type": "Choice",
                "Choices": [
                    {
                        "Variable": "$.planned.plan.outcome",
                        "StringEquals": "scored",
                        "Next": "ScoreShards",
                    }
                ],
                "Default": "Done",
            },
            "ScoreShards": {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": {"InputType": "JSON"},
                    "Parameters": {"Bucket": BUCKET, "Key.$": "$.planned.plan.items_key"},
                },
                "ItemSelector": {
                    "run.$": "$$.Execution.Name",
                    "object.$": "$.object",
                    "shard.$": "$$.Map.Item.Value",
                },
                "MaxConcurrencyPath": "$.planned.plan.concurrency",
                **tolerance,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "ScoreShard",
                    "States": {
                        "ScoreShard": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::lambda:invoke",
                            "Parameters": {
                                "FunctionName": function_arn("shard-fn"),
                                "Payload.$": "$",
                            },
                            "ResultSelector": {"index.$": "$.Payload.index"},
                            "Retry": [
                                RETRY_SERVICE_ERRORS,
                                {"ErrorEquals": ["TransientError"], "MaxAttempts": 1},
                            ],
                            "End": True,
                        }
                    },
                },
                "ResultPath": "$.shards",
                "Catch": [CATCH_ALL],
                "Next": "Merge",
            },
            "Merge": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {
                    "FunctionName": function_arn("merge-fn"),
                    "Payload": {"run.$": "$$.Execution.Name", "shards.$": "$.shards"},
                },
                "ResultSelector": {"merged.$": "$.Payload"},
                "ResultPath": "$.merged",
                "Catch": [CATCH_ALL],
                "Next": "Done",
            },
            "CleanUp": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {
                    "FunctionName": function_arn("merge-fn"),
                    "Payload": {"run.$": "$$.Execution.Name", "error.$": "$.error"},
                },
                "ResultPath": None,
                "Next": "Failed",
            },
            "Failed": {"Type": "Fail", "Error": "ShardedScoringFailed", "Cause": "see report"},
            "Done": {"Type": "Succeed"},
        },
    }


@dataclass
class Functions:
    """The three functions, scripted by the execution's input (its object says how)."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    running: Counter[tuple[str, str]] = field(default_factory=Counter)  # (function, run)
    peak: Counter[tuple[str, str]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, function: str, event: Any) -> Invocation:
        key = (function, event.get("run", ""))
        with self.lock:
            self.calls.append((function, event))
            self.running[key] += 1
            self.peak[key] = max(self.peak[key], self.running[key])
            attempts = sum(1 for call in self.calls if call == (function, event))
        try:
            return Invocation(self._answer(function, event, attempts), None, [], 0.0)
        finally:
            with self.lock:
                self.running[key] -= 1

    def _answer(self, function: str, event: Any, attempts: int) -> Any:
        if function == "Plan":
            how = event["object"]
            if how.get("plan_error"):
                return error("PlanError", "cannot cut the file")
            return {
                "outcome": how.get("outcome", "scored"),
                "items_key": how.get("items_key", ""),
                "concurrency": how.get("concurrency", 0),
            }
        if function == "Shard":
            time.sleep(SHARD_SECONDS)
            shard = event["shard"]
            if shard.get("fail"):
                return error("ShardFailed", f"shard {shard['index']} failed")
            if shard.get("flaky") and attempts == 1:
                return error("TransientError", "try again")
            return {"index": shard["index"], "rows": 10}
        return {"done": True}

    def of(self, function: str, run: str) -> list[Any]:
        with self.lock:
            return [e for f, e in self.calls if f == function and e.get("run") == run]


def error(error_type: str, message: str) -> dict[str, Any]:
    return {"errorType": error_type, "errorMessage": message, "stackTrace": []}


@dataclass
class Moto:
    endpoint: str
    functions: Functions
    sfn: Any
    s3: Any
    machine: str  # no failure tolerated
    tolerant_machine: str  # half the items may fail


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the wrapper exited with {process.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
        except OSError:
            time.sleep(0.05)
        else:
            return
    raise TimeoutError(f"the wrapper did not listen on {port}")


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    functions = Functions()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    port = free_port()
    with (
        LocalLambdaApi(NAMES, functions, region=REGION, account=ACCOUNT) as api,
        log.open("wb") as output,
    ):
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack.moto_server", "-H", "127.0.0.1", "-p", str(port)],
            env={**os.environ, LAMBDA_ENDPOINT_VARIABLE: api.url, "MOTO_PORT": str(port)},
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port, process)
            endpoint = f"http://127.0.0.1:{port}"
            sfn = boto3.client("stepfunctions", region_name=REGION, endpoint_url=endpoint)
            s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
            s3.create_bucket(Bucket=BUCKET)
            role = f"arn:aws:iam::{ACCOUNT}:role/test"
            machines = [
                sfn.create_state_machine(
                    name=name, definition=json.dumps(definition(tolerance)), roleArn=role
                )["stateMachineArn"]
                for name, tolerance in TOLERANCES.items()
            ]
            yield Moto(endpoint, functions, sfn, s3, *machines)
        finally:
            process.terminate()
            process.wait(timeout=10)


def put_items(moto: Moto, key: str, items: list[dict[str, Any]]) -> str:
    moto.s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(items).encode())
    return key


def run(moto: Moto, name: str, how: dict[str, Any], *, machine: str | None = None) -> Any:
    """Start an execution named NAME and wait for its end."""
    started = moto.sfn.start_execution(
        stateMachineArn=machine or moto.machine,
        name=name,
        input=json.dumps({"object": {"key": f"incoming/{name}.csv", **how}}),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        described = moto.sfn.describe_execution(executionArn=started["executionArn"])
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.05)
    raise TimeoutError(f"{name} still running")


def history_types(moto: Moto, execution_arn: str) -> list[str]:
    events = moto.sfn.get_execution_history(executionArn=execution_arn)["events"]
    return [event["type"] for event in events]


def test_the_map_invokes_the_function_with_each_selected_item(moto: Moto) -> None:
    items = [{"index": i, "start": i * 100, "end": (i + 1) * 100} for i in range(6)]
    how = {"items_key": put_items(moto, "staging/ok/items.json", items), "concurrency": 3}
    described = run(moto, "all-ok", how)

    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["shards"] == [{"index": i} for i in range(6)]
    assert output["merged"] == {"merged": {"done": True}}
    obj = {"key": "incoming/all-ok.csv", **how}
    assert moto.functions.of("Plan", "all-ok") == [{"run": "all-ok", "object": obj}]
    seen = moto.functions.of("Shard", "all-ok")
    assert sorted(seen, key=lambda e: e["shard"]["index"]) == [
        {"run": "all-ok", "object": obj, "shard": item} for item in items
    ]
    # MaxConcurrencyPath: three at once, never more.
    assert moto.functions.peak["Shard", "all-ok"] == 3
    assert moto.functions.of("Merge", "all-ok") == [
        {"run": "all-ok", "shards": [{"index": i} for i in range(6)]}
    ]


def test_a_choice_can_skip_the_map(moto: Moto) -> None:
    described = run(moto, "rejected", {"outcome": "rejected"})
    assert described["status"] == "SUCCEEDED"
    assert moto.functions.of("Shard", "rejected") == []


def test_a_function_error_is_caught_under_its_error_type(moto: Moto) -> None:
    described = run(moto, "plan-fails", {"plan_error": True})

    assert described["status"] == "FAILED"
    assert described["error"] == "ShardedScoringFailed"
    [cleanup] = moto.functions.of("Merge", "plan-fails")
    assert cleanup["error"]["Error"] == "PlanError"  # the errorType, as Step Functions names it
    assert json.loads(cleanup["error"]["Cause"])["errorMessage"] == "cannot cut the file"


def test_a_failed_shard_fails_the_map_into_its_catch(moto: Moto) -> None:
    items = [{"index": i, "fail": i == 2} for i in range(4)]
    how = {"items_key": put_items(moto, "staging/bad/items.json", items), "concurrency": 2}
    described = run(moto, "shard-fails", how)

    assert described["status"] == "FAILED"
    [cleanup] = moto.functions.of("Merge", "shard-fails")
    # As AWS: the failed child exceeds the tolerance (0), the Map Run fails.
    assert cleanup["error"]["Error"] == "States.ExceedToleratedFailureThreshold"
    types = history_types(moto, described["executionArn"])
    assert "MapRunFailed" in types
    assert "MapRunSucceeded" not in types


def test_failures_within_the_tolerance_let_the_map_succeed(moto: Moto) -> None:
    items = [{"index": i, "fail": i == 1} for i in range(4)]
    how = {"items_key": put_items(moto, "staging/some/items.json", items), "concurrency": 4}
    described = run(moto, "tolerated", how, machine=moto.tolerant_machine)

    assert described["status"] == "SUCCEEDED", described
    assert moto.functions.of("Merge", "tolerated")[0]["run"] == "tolerated"


def test_a_retried_error_runs_the_shard_again(moto: Moto) -> None:
    items = [{"index": 0}, {"index": 1, "flaky": True}]
    how = {"items_key": put_items(moto, "staging/flaky/items.json", items), "concurrency": 2}
    described = run(moto, "flaky", how)

    assert described["status"] == "SUCCEEDED", described
    attempts = Counter(event["shard"]["index"] for event in moto.functions.of("Shard", "flaky"))
    assert attempts == {0: 1, 1: 2}


def test_a_reused_execution_name_is_refused(moto: Moto) -> None:
    run(moto, "once", {"outcome": "rejected"})
    with pytest.raises(moto.sfn.exceptions.ExecutionAlreadyExists):
        moto.sfn.start_execution(
            stateMachineArn=moto.machine, name="once", input=json.dumps({"object": {}})
        )
