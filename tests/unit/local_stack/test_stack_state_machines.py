"""The local stack with a state machine: made in moto from the built template, its ARN in
the functions' environment, its tasks reaching the functions through the stack's Lambda
API, all stopped with the stack.

A synthetic project laid out as `sam build` leaves it (the definition outside the build,
DefinitionUri pointing back to it); the function's pool is a fake, so nothing is built and
no emulator runs.
"""

from __future__ import annotations

import json
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from devstack import runtime
from devstack.rie import Invocation
from devstack.stack import LocalStack, StackConfig

DEFINITION = {
    "StartAt": "Work",
    "States": {
        "Work": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "${WorkArn}", "Payload": {"bucket": "${Bucket}"}},
            "OutputPath": "$.Payload",
            "End": True,
        }
    },
}
BUILT_TEMPLATE = """
Resources:
  Data:
    Type: AWS::S3::Bucket
  Work:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: Work
      Handler: app.handler
      Runtime: python3.11
      Environment:
        Variables:
          MACHINE: !Ref Machine
          AWS_ENDPOINT_URL_SFN: ""
  Machine:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: ../../../statemachine/machine.asl.json
      DefinitionSubstitutions:
        WorkArn: !GetAtt Work.Arn
        Bucket: !Ref Data
"""


class FakePool:
    """Stands in for the function's FunctionPool: answers with the event it got."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.stopped = threading.Event()

    def invoke(self, event: Any) -> Invocation:
        self.events.append(event)
        return Invocation({"seen": event}, None, [], 0.0)

    def stop(self) -> None:
        self.stopped.set()


def project(root: Path) -> None:
    build = runtime.build_dir(root=root)
    (build / "Work").mkdir(parents=True)
    (build / "template.yaml").write_text(textwrap.dedent(BUILT_TEMPLATE))
    (root / "statemachine").mkdir()
    (root / "statemachine" / "machine.asl.json").write_text(json.dumps(DEFINITION))
    # The runtime client the pools would run (never, here), as if installed before.
    installed = root / ".local" / "runtime" / f"python{runtime.local_python_version()}"
    installed.mkdir(parents=True)
    (installed / ".installed").write_text("awslambdaric\n")


@pytest.mark.slow  # starts a moto server
def test_the_stack_runs_its_state_machine_through_the_functions(tmp_path: Path) -> None:
    root = tmp_path / "project"
    project(root)
    config = StackConfig(
        root=root,
        api_port=0,
        s3_port=0,
        stack_name="sm-stack",
        build=False,
        env_file=None,
        seed_model=False,
        state_dir=tmp_path / "state",
    )
    stack = LocalStack(config)
    try:
        stack.start()
        arn = stack.state_machines["Machine"]
        assert arn == "arn:aws:states:us-east-1:123456789012:stateMachine:sm-stack-machine"
        environment = stack.pools["Work"].spec.environment
        assert environment["MACHINE"] == arn
        assert environment["AWS_ENDPOINT_URL_SFN"] == stack.s3_endpoint
        state = json.loads((tmp_path / "state" / "stack.json").read_text())
        assert state["state_machines"] == {"Machine": arn}

        fake = FakePool()
        stack.pools["Work"].stop()
        stack.pools["Work"] = fake  # type: ignore[assignment]
        sfn = stack.client("stepfunctions")
        started = sfn.start_execution(stateMachineArn=arn, input="{}")
        deadline = time.monotonic() + 30
        while (described := sfn.describe_execution(executionArn=started["executionArn"]))[
            "status"
        ] == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert described["status"] == "SUCCEEDED", described
        assert json.loads(described["output"]) == {"seen": {"bucket": "sm-stack-data"}}
        assert fake.events == [{"bucket": "sm-stack-data"}]
        assert stack.lambda_api is not None
        lambda_url = stack.lambda_api.url
    finally:
        stack.stop()
    assert fake.stopped.is_set()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(lambda_url, timeout=1)
