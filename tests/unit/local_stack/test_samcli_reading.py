"""devstack reads the template through aws-sam-cli (devstack.sam_reading): the version it
relies on is pinned, the calls it makes exist as it makes them, and what it reads from the
repo's template is what samcli's own provider reads, apart from the documented differences
(stable local names, CloudFormation's string values)."""

from __future__ import annotations

import inspect
import re
import textwrap
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from samcli.lib.intrinsic_resolver.intrinsic_property_resolver import IntrinsicResolver
from samcli.lib.intrinsic_resolver.intrinsics_symbol_table import IntrinsicsSymbolTable
from samcli.lib.providers.provider import Function, Stack
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
from samcli.lib.samlib.wrapper import SamTranslatorWrapper

from devstack import runtime
from devstack.sam_reading import SAMCLI_VERSION
from devstack.template import Template, TemplateError

SOURCE = runtime.ROOT / "template.yaml"
STACK = "my-stack"
REGION = "eu-west-1"


def test_the_installed_samcli_is_the_one_pinned_for_devstack() -> None:
    dev = tomllib.loads((runtime.ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["dev"]
    (pin,) = [re.split(r"==", spec)[1].split()[0] for spec in dev if spec.startswith("aws-sam-cli")]
    assert pin == SAMCLI_VERSION, "pyproject's aws-sam-cli pin and devstack.sam_reading differ"
    assert version("aws-sam-cli") == SAMCLI_VERSION, (
        "another aws-sam-cli is installed: devstack.sam_reading overrides samcli internals, "
        "check them against the new version before moving the pin"
    )


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (SamTranslatorWrapper.__init__, ["self", "sam_template", "parameter_values"]),
        (SamTranslatorWrapper.run_plugins, ["self", "convert_local_uris"]),
        (IntrinsicResolver.__init__, ["self", "template", "symbol_resolver"]),
        (IntrinsicResolver.intrinsic_property_resolver, ["self", "intrinsic", "ignore_errors"]),
        (IntrinsicResolver.resolve_template, ["self", "ignore_errors"]),
        (IntrinsicResolver.handle_fn_if, ["self", "intrinsic_value", "ignore_errors"]),
        (IntrinsicResolver.handle_fn_sub, ["self", "intrinsic_value", "ignore_errors"]),
        (IntrinsicsSymbolTable.__init__, ["self", "template", "logical_id_translator"]),
        (
            IntrinsicsSymbolTable.resolve_symbols,
            ["self", "logical_id", "resource_attribute", "ignore_errors"],
        ),
        (IntrinsicsSymbolTable.get_default_attribute_resolver, ["self"]),
        (
            Stack.__init__,
            ["self", "parent_stack_path", "name", "location", "parameters", "template_dict"],
        ),
        (SamFunctionProvider.__init__, ["self", "stacks", "use_raw_codeuri"]),
    ],
)
def test_the_samcli_calls_devstack_makes_exist_as_it_makes_them(
    call: Any, expected: list[str]
) -> None:
    # The leading parameters, in order: devstack passes some by position and overrides
    # handle_fn_if, handle_fn_sub, resolve_symbols and get_default_attribute_resolver.
    names = list(inspect.signature(call).parameters)
    assert names[: len(expected)] == expected
    # What devstack reads of a Function.
    for name in ("name", "handler", "runtime", "codeuri", "layers", "memory", "timeout"):
        assert name in Function._fields
    assert {"environment", "logging_config", "packagetype"} <= set(Function._fields)


def samcli_functions(**overrides: str) -> dict[str, Any]:
    """What `sam local` reads: samcli's stack and function providers, unchanged."""
    stacks, _ = SamLocalStackProvider.get_stacks(
        str(SOURCE),
        parameter_overrides=overrides,
        global_parameter_overrides={"AWS::Region": REGION, "AWS::StackName": STACK},
    )
    provider = SamFunctionProvider(stacks, ignore_code_extraction_warnings=True)
    return {function.name: function for function in provider.get_all()}


@pytest.mark.filterwarnings("ignore:.* is deprecated:DeprecationWarning")
@pytest.mark.parametrize(
    ("serving_runtime", "dependencies"),
    [("onnx", "OnnxDependenciesLayer"), ("sklearn", "SklearnDependenciesLayer")],
)
def test_functions_are_what_samclis_own_provider_reads(
    serving_runtime: str, dependencies: str
) -> None:
    ours = Template(
        SOURCE,
        stack_name=STACK,
        region=REGION,
        parameter_overrides={"ServingRuntime": serving_runtime},
    ).functions()
    theirs = samcli_functions(ServingRuntime=serving_runtime)
    assert (
        set(ours)
        == set(theirs)
        == {
            "PredictApiFunction",
            "BatchScoringFunction",
            "ShardPlanFunction",
            "ShardScoreFunction",
            "ShardMergeFunction",
        }
    )
    for logical_id, function in ours.items():
        sam = theirs[logical_id]
        # Globals' Fn::If picked the serving runtime's dependency layer, then ModelStoreLayer.
        assert [layer.name for layer in sam.layers] == [dependencies, "ModelStoreLayer"]
        assert function.layer_dirs == tuple(Path(layer.codeuri) / "python" for layer in sam.layers)
        assert function.code_dir == Path(sam.codeuri)
        assert (function.handler, function.runtime) == (sam.handler, sam.runtime)
        assert (function.memory_mb, function.timeout_s) == (sam.memory, sam.timeout)
        assert function.name == sam.functionname  # FunctionName: !Sub "${AWS::StackName}-..."
        variables = sam.environment["Variables"]
        assert set(function.environment) == set(variables) | {
            "AWS_LAMBDA_LOG_FORMAT",
            "AWS_LAMBDA_LOG_LEVEL",
        }
        assert function.environment["SERVING_RUNTIME"] == variables["SERVING_RUNTIME"]
        for name, value in variables.items():
            if name == "MODEL_BUCKET":
                # samcli gives a bucket's logical id; the local stack makes the bucket, named.
                assert value == "ModelBucket"
                assert function.environment[name] == f"{STACK}-model-bucket"
            elif name == "SHARDING_STATE_MACHINE_ARN":
                # samcli gives the logical id; the local stack makes the state machine in
                # moto, and its Ref is the ARN, as CloudFormation's is.
                assert value == "ShardedScoringStateMachine"
                assert function.environment[name] == (
                    f"arn:aws:states:{REGION}:123456789012:stateMachine:{STACK}-sharded-scoring"
                )
            elif isinstance(value, dict):
                # samcli leaves a Ref to a float Default (0.2) unresolved; CloudFormation's
                # values are strings.
                assert value == {"Ref": "DriftThreshold"}
                assert function.environment[name] == "0.2"
            else:
                # samcli keeps a Default's YAML type (60); Lambda gets "60".
                assert function.environment[name] == str(value)


CONDITIONAL = """
    Parameters:
      Log:
        Type: String
        Default: ""
    Conditions:
      HasLog: !Not [!Equals [!Ref Log, ""]]
    Resources:
      Logs:
        Type: AWS::Logs::LogGroup
        Condition: HasLog
      Fn:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: fn/
          Handler: app.handler
          Runtime: python3.13
          Environment:
            Variables:
              # samcli resolves both branches first, and cannot resolve a log group's ARN.
              LOGS: !If [HasLog, !GetAtt Logs.Arn, none]
              # samcli looks the map's values up as logical ids ("a.b" would be "$a.b").
              LABEL: !Sub ["${Name}-${AWS::Region}", {Name: "v1.2"}]
              LITERAL: !Sub "${!Name}"
"""


def test_resolution_is_cloudformations_where_samclis_is_not(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(CONDITIONAL))
    function = Template(path, stack_name=STACK, region=REGION).functions()["Fn"]
    assert function.environment == {
        "LOGS": "none",
        "LABEL": f"v1.2-{REGION}",
        "LITERAL": "${Name}",
    }
    # The branch a condition picks must resolve: the local stack makes no log group.
    with pytest.raises(TemplateError, match="LOGS"):
        Template(path, stack_name=STACK, parameter_overrides={"Log": "on"}).functions()


def test_an_event_without_rest_api_id_gets_sams_implicit_api(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(
        textwrap.dedent(
            """
            Resources:
              Fn:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: fn/
                  Handler: app.handler
                  Events:
                    Hello:
                      Type: Api
                      Properties: {Path: /hello, Method: get}
            """
        )
    )
    (api,) = Template(path, stack_name=STACK).apis()
    assert (api.logical_id, api.stage) == ("ServerlessRestApi", "Prod")
    assert [(r.method, r.path, r.function) for r in api.routes] == [("GET", "/hello", "Fn")]
    assert not api.routes[0].api_key_required
    assert api.usage_plan is None
