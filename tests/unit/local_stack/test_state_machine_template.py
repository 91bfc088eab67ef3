"""What the local stack reads of a template's AWS::Serverless::StateMachine resources: the
definition (DefinitionUri or Definition) with DefinitionSubstitutions applied, the names
and ARNs that !Ref and !GetAtt give, and a loud error for what would only fail at run time.

Small templates in tmp dirs, and one look at the repo's own template.
"""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from devstack import runtime
from devstack.asl import substitute
from devstack.template import LOCAL_ACCOUNT, Template, TemplateError

STACK = "my-stack"
REGION = "eu-west-1"
MACHINE_ARN = f"arn:aws:states:{REGION}:{LOCAL_ACCOUNT}:stateMachine:{STACK}-sharded-scoring"
DEFINITION = {
    "StartAt": "Plan",
    "States": {
        "Plan": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "${PlanFunctionArn}", "Payload.$": "$"},
            "Next": "Shards",
        },
        "Shards": {
            "Type": "Map",
            "ItemReader": {
                "Resource": "arn:aws:states:::s3:getObject",
                "ReaderConfig": {"InputType": "JSON"},
                "Parameters": {"Bucket": "${DataBucket}", "Key.$": "$.key"},
            },
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Score",
                "States": {
                    "Score": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::lambda:invoke",
                        "Parameters": {"FunctionName": "${ShardFunctionName}", "Payload.$": "$"},
                        "End": True,
                    }
                },
            },
            "End": True,
        },
    },
}
RESOURCES = """
Parameters:
  Rows: {Type: Number, Default: 100}
Resources:
  PlanFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: plan/
      Handler: app.handler
      Runtime: python3.11
  ShardFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub "${AWS::StackName}-shards"
      CodeUri: shard/
      Handler: app.handler
      Runtime: python3.11
  Starter:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: starter/
      Handler: app.handler
      Runtime: python3.11
      Environment:
        Variables:
          MACHINE_ARN: !Ref Machine
          MACHINE_NAME: !GetAtt Machine.Name
"""
SUBSTITUTIONS = """
      DefinitionSubstitutions:
        PlanFunctionArn: !GetAtt PlanFunction.Arn
        ShardFunctionName: !Ref ShardFunction
        DataBucket: !Sub "${AWS::StackName}-data-${AWS::AccountId}-${AWS::Region}"
        Rows: !Ref Rows
"""


def machine(properties: str) -> str:
    return (
        RESOURCES
        + """
  Machine:
    Type: AWS::Serverless::StateMachine
    Properties:
      Name: !Sub "${AWS::StackName}-sharded-scoring"
"""
        + textwrap.indent(textwrap.dedent(properties).strip("\n"), " " * 6)
        + "\n"
        + SUBSTITUTIONS
    )


def write(directory: Path, body: str, definition: Any = DEFINITION) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "statemachine").mkdir(exist_ok=True)
    text = definition if isinstance(definition, str) else json.dumps(definition, indent=2)
    (directory / "statemachine" / "machine.asl.json").write_text(text)
    path = directory / "template.yaml"
    path.write_text(body)
    return path


def read(path: Path, source_dir: Path | None = None) -> Template:
    return Template(path, stack_name=STACK, region=REGION, source_dir=source_dir)


def test_the_definition_is_read_and_substituted(tmp_path: Path) -> None:
    path = write(tmp_path, machine("DefinitionUri: statemachine/machine.asl.json"))
    [state_machine] = read(path).state_machines()

    assert state_machine.logical_id == "Machine"
    assert state_machine.name == f"{STACK}-sharded-scoring"
    assert state_machine.arn == MACHINE_ARN
    assert state_machine.type == "STANDARD"
    states = state_machine.definition["States"]
    # A function's Arn is its local ARN, which the local Lambda API answers.
    plan_arn = f"arn:aws:lambda:{REGION}:{LOCAL_ACCOUNT}:function:{STACK}-plan-function"
    assert states["Plan"]["Parameters"]["FunctionName"] == plan_arn
    score = states["Shards"]["ItemProcessor"]["States"]["Score"]
    assert score["Parameters"]["FunctionName"] == f"{STACK}-shards"
    bucket = f"{STACK}-data-{LOCAL_ACCOUNT}-{REGION}"
    assert states["Shards"]["ItemReader"]["Parameters"] == {"Bucket": bucket, "Key.$": "$.key"}


def test_ref_of_a_state_machine_is_its_arn_before_it_exists(tmp_path: Path) -> None:
    path = write(tmp_path, machine("DefinitionUri: statemachine/machine.asl.json"))
    template = read(path)
    environment = template.functions()["Starter"].environment
    assert environment["MACHINE_ARN"] == MACHINE_ARN
    assert environment["MACHINE_NAME"] == f"{STACK}-sharded-scoring"
    assert template.physical_id("Machine") == MACHINE_ARN


def test_a_state_machine_without_a_name_is_named_after_the_stack(tmp_path: Path) -> None:
    body = machine("DefinitionUri: statemachine/machine.asl.json").replace(
        '      Name: !Sub "${AWS::StackName}-sharded-scoring"\n', ""
    )
    [state_machine] = read(write(tmp_path, body)).state_machines()
    assert state_machine.name == f"{STACK}-machine"
    assert state_machine.arn.endswith(f":stateMachine:{STACK}-machine")


def test_an_inline_definition_is_substituted_too(tmp_path: Path) -> None:
    body = machine(f"Type: express\nDefinition: {json.dumps(DEFINITION)}")
    [state_machine] = read(write(tmp_path, body)).state_machines()
    assert state_machine.type == "EXPRESS"
    assert state_machine.definition["States"]["Plan"]["Parameters"]["FunctionName"].endswith(
        f":function:{STACK}-plan-function"
    )


def test_an_unset_substitution_is_an_error_naming_each(tmp_path: Path) -> None:
    definition = json.dumps(DEFINITION).replace("${DataBucket}", "${Bucket}-${Prefix}")
    path = write(tmp_path, machine("DefinitionUri: statemachine/machine.asl.json"), definition)
    with pytest.raises(
        TemplateError, match=re.escape("Machine: the definition uses ${Bucket}, ${Prefix}")
    ):
        read(path).state_machines()


def test_a_built_template_reads_its_definition_where_sam_build_left_it(tmp_path: Path) -> None:
    # sam build rewrites DefinitionUri relative to the build; the stack reads a copy.
    project = tmp_path / "project"
    built = write(
        project / ".aws-sam" / "build",
        machine("DefinitionUri: ../../statemachine/machine.asl.json"),
    )
    write(project, "Resources: {}\n")  # the project's own statemachine/ folder
    shutil.rmtree(built.parent / "statemachine")
    copy = tmp_path / "state" / "build"
    shutil.copytree(built.parent, copy)

    [state_machine] = read(copy / "template.yaml", source_dir=built.parent).state_machines()
    assert state_machine.definition["StartAt"] == "Plan"
    with pytest.raises(TemplateError, match="cannot read DefinitionUri"):
        read(copy / "template.yaml").state_machines()


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ("DefinitionUri: s3://bucket/machine.asl.json", "only a local file runs here"),
        ("DefinitionUri: {Bucket: b, Key: k}", "only a local file runs here"),
        ("", "give either Definition or DefinitionUri"),
        ("DefinitionUri: statemachine/missing.json", "cannot read DefinitionUri"),
    ],
)
def test_definitions_that_cannot_run_locally(tmp_path: Path, properties: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        read(write(tmp_path, machine(properties))).state_machines()


def test_a_definition_that_is_not_json_once_substituted(tmp_path: Path) -> None:
    definition = json.dumps(DEFINITION).replace('"${DataBucket}"', "${DataBucket}")
    path = write(tmp_path, machine("DefinitionUri: statemachine/machine.asl.json"), definition)
    with pytest.raises(TemplateError, match="substituted, is not JSON"):
        read(path).state_machines()


def test_a_substitution_that_does_not_resolve_locally(tmp_path: Path) -> None:
    body = machine("DefinitionUri: statemachine/machine.asl.json") + textwrap.indent(
        "Queue: {Type: AWS::SQS::Queue}\n", "  "
    )
    body = body.replace(
        "PlanFunctionArn: !GetAtt PlanFunction.Arn", "PlanFunctionArn: !GetAtt Queue.Arn"
    )
    with pytest.raises(TemplateError, match="DefinitionSubstitutions PlanFunctionArn"):
        read(write(tmp_path, body)).state_machines()


def test_substitute_replaces_every_occurrence() -> None:
    assert substitute("M", "${A}/${B}/${A}", {"A": "1", "B": "2", "C": "3"}) == "1/2/1"
    assert substitute("M", "no variables", {}) == "no variables"


def test_the_repos_state_machines_name_the_repos_functions() -> None:
    template = Template(runtime.ROOT / "template.yaml", stack_name=STACK, region=REGION)
    functions = {template.function_arn(f.name) for f in template.functions().values()}
    for state_machine in template.state_machines():
        text = json.dumps(state_machine.definition)
        named = set(re.findall(r"arn:aws:lambda:[^\"]+", text))
        assert named, f"{state_machine.logical_id} invokes no function"
        assert named <= functions, named - functions
