"""The local Lambda Invoke API over real HTTP, through botocore's own Lambda client.

The functions are a fake invoker returning Invocation objects (the pool and the RIE have
their own tests): what is checked is the routing of FunctionName's forms and that botocore
reads every answer as it reads Lambda's (FunctionError, error codes), which is what Step
Functions' lambda:invoke tasks go by.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.config import Config

from devstack.lambda_api import LocalLambdaApi
from devstack.pool import PoolClosedError
from devstack.rie import Invocation

REGION = "eu-west-1"
ACCOUNT = "123456789012"
FUNCTIONS = {"my-stack-score": "ScoreFunction", "my-stack-plan": "PlanFunction"}


def arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


@dataclass
class FakeFunctions:
    """Answers as a handler would: echoes the event, or raises what the event asks for."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    barrier: threading.Barrier | None = None

    def __call__(self, function: str, event: Any) -> Invocation:
        with self.lock:
            self.calls.append((function, event))
        if self.barrier is not None:
            self.barrier.wait(timeout=5)
        if isinstance(event, dict) and event.get("raise") == "closed":
            raise PoolClosedError(f"{function} is stopping")
        if isinstance(event, dict) and event.get("raise") == "start":
            raise RuntimeError("emulator exited with 1")
        if isinstance(event, dict) and "fail" in event:
            error = {"errorMessage": event["fail"], "errorType": "ValueError", "stackTrace": []}
            return Invocation(error, None, [], 0.0)
        return Invocation({"function": function, "event": event}, None, [], 0.0)


@pytest.fixture
def functions() -> FakeFunctions:
    return FakeFunctions()


@pytest.fixture
def api(functions: FakeFunctions) -> Iterator[LocalLambdaApi]:
    with LocalLambdaApi(FUNCTIONS, functions, region=REGION, account=ACCOUNT) as running:
        yield running


@pytest.fixture
def client(api: LocalLambdaApi) -> Any:
    # One attempt: a 5xx must show as it came, not after botocore's own retries.
    return boto3.client(
        "lambda",
        region_name=REGION,
        endpoint_url=api.url,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def payload(response: Mapping[str, Any]) -> Any:
    return json.loads(response["Payload"].read())


@pytest.mark.parametrize(
    "function_name",
    [
        "my-stack-score",
        arn("my-stack-score"),
        f"{ACCOUNT}:function:my-stack-score",  # a partial ARN
        f"{arn('my-stack-score')}:$LATEST",
        "my-stack-score:live",  # locally, every qualifier is the one code that runs
    ],
)
def test_every_form_of_function_name_reaches_the_function(
    client: Any, functions: FakeFunctions, function_name: str
) -> None:
    response = client.invoke(FunctionName=function_name, Payload=b'{"shard": 3}')
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert response["ExecutedVersion"] == "$LATEST"
    assert payload(response) == {"function": "ScoreFunction", "event": {"shard": 3}}
    assert functions.calls == [("ScoreFunction", {"shard": 3})]


def test_any_json_is_an_event_and_no_payload_is_an_empty_one(
    client: Any, functions: FakeFunctions
) -> None:
    client.invoke(FunctionName="my-stack-plan", Payload=b"[1, 2]")
    client.invoke(FunctionName="my-stack-plan")
    assert functions.calls == [("PlanFunction", [1, 2]), ("PlanFunction", {})]


def test_a_handler_error_is_a_200_with_function_error_and_the_error_document(
    client: Any,
) -> None:
    response = client.invoke(FunctionName="my-stack-score", Payload=b'{"fail": "bad shard"}')
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert payload(response) == {
        "errorMessage": "bad shard",
        "errorType": "ValueError",
        "stackTrace": [],
    }


@pytest.mark.parametrize(
    "function_name",
    [
        "my-stack-missing",
        arn("my-stack-missing"),
        f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:my-stack-score",  # another region
        "210987654321:function:my-stack-score",  # another account
        "ScoreFunction",  # a logical id is no function name
    ],
)
def test_a_function_not_here_is_resource_not_found(
    client: Any, functions: FakeFunctions, function_name: str
) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="Function not found"):
        client.invoke(FunctionName=function_name, Payload=b"{}")
    assert functions.calls == []


@pytest.mark.parametrize("invocation_type", ["Event", "DryRun"])
def test_only_request_response_runs(
    client: Any, functions: FakeFunctions, invocation_type: str
) -> None:
    with pytest.raises(
        client.exceptions.InvalidParameterValueException, match="RequestResponse"
    ) as caught:
        client.invoke(FunctionName="my-stack-score", InvocationType=invocation_type)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert functions.calls == []


def test_a_payload_that_is_not_json_is_refused(client: Any, functions: FakeFunctions) -> None:
    with pytest.raises(client.exceptions.InvalidRequestContentException):
        client.invoke(FunctionName="my-stack-score", Payload=b"{not json")
    assert functions.calls == []


@pytest.mark.parametrize(("cause", "status"), [("start", 500), ("closed", 503)])
def test_an_environment_that_cannot_run_is_a_service_exception(
    client: Any, cause: str, status: int
) -> None:
    # Step Functions names this Lambda.ServiceException, which the states' Retry covers.
    with pytest.raises(client.exceptions.ServiceException) as caught:
        client.invoke(FunctionName="my-stack-score", Payload=json.dumps({"raise": cause}))
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_other_operations_are_unknown(api: LocalLambdaApi, functions: FakeFunctions) -> None:
    for method, target in [
        ("GET", "/2015-03-31/functions/my-stack-score"),
        ("GET", "/2015-03-31/functions/my-stack-score/invocations"),
        ("POST", "/2014-11-13/functions/my-stack-score/invoke-async/"),
    ]:
        response = api.handle(method, target, {}, b"{}")
        assert response.status == 404
        assert ("x-amzn-ErrorType", "UnknownOperationException") in response.headers
    assert functions.calls == []


def test_invocations_run_side_by_side(api: LocalLambdaApi, functions: FakeFunctions) -> None:
    # Each invocation waits for the other three: they finish only if all four run at once.
    functions.barrier = threading.Barrier(4)
    clients = [boto3.client("lambda", region_name=REGION, endpoint_url=api.url) for _ in range(4)]
    with concurrent.futures.ThreadPoolExecutor(4) as workers:
        answers = list(
            workers.map(
                lambda i: payload(
                    clients[i].invoke(FunctionName="my-stack-score", Payload=json.dumps({"i": i}))
                ),
                range(4),
            )
        )
    assert [answer["event"]["i"] for answer in answers] == [0, 1, 2, 3]


def test_each_invocation_is_logged(functions: FakeFunctions) -> None:
    lines: list[str] = []
    with LocalLambdaApi(
        FUNCTIONS, functions, region=REGION, account=ACCOUNT, on_log=lines.append
    ) as api:
        client = boto3.client("lambda", region_name=REGION, endpoint_url=api.url)
        client.invoke(FunctionName=arn("my-stack-score"), Payload=b'{"fail": "x"}')
    assert len(lines) == 1
    assert lines[0].startswith(
        f"POST /2015-03-31/functions/{arn('my-stack-score')}/invocations 200"
    )
    assert lines[0].endswith("(Unhandled)")
