"""statemachine/sharded_scoring.asl.json, on its own and against template.yaml.

cfn-lint validates a state machine's Definition written in a template, but SAM hands a
DefinitionUri file to CloudFormation as an S3 location: nothing checks it before a
deploy (or a run) fails. These tests validate it against cfn-lint's own state machine
schema, then check what no schema can: that it invokes the template's functions with
payloads their code accepts, retries throttling, and ends every failure in the clean-up.
"""

from __future__ import annotations

import ast
import copy
import functools
import importlib.resources
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, get_args

import cfnlint.data.schemas.other.step_functions  # type: ignore[import-untyped]
import pytest
from cfnlint.jsonschema import CfnTemplateValidator  # type: ignore[import-untyped]
from cfnlint.schema.resolver import RefResolver  # type: ignore[import-untyped]
from samcli.yamlhelper import yaml_parse

from model_store.batch.sharded import PlannedRun, StepInput
from tests.support.sam_template import PSEUDO_PARAMETERS, ROOT, TEMPLATE

Json = dict[str, Any]

STATE_MACHINE = "ShardedScoringStateMachine"
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
PLAN_HANDLER = "batch_scoring.sharded.plan"
FINISH_HANDLER = "batch_scoring.sharded.finish"
THROTTLED = "Lambda.TooManyRequestsException"
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
# ASL's defaults for a retrier that leaves them out.
DEFAULT_BACKOFF_RATE = 2.0
DEFAULT_MAX_ATTEMPTS = 3


@pytest.fixture(scope="module")
def template() -> Json:
    parsed: Json = yaml_parse(TEMPLATE.read_text())
    return parsed


@pytest.fixture(scope="module")
def machine(template: Json) -> Json:
    """The state machine's properties in the template."""
    properties: Json = template["Resources"][STATE_MACHINE]["Properties"]
    return properties


@pytest.fixture(scope="module")
def text(machine: Json) -> str:
    return (ROOT / str(machine["DefinitionUri"])).read_text()


@pytest.fixture
def definition(text: str) -> Json:
    parsed: Json = json.loads(text)
    return parsed


# -- helpers ------------------------------------------------------------------------------


def scopes(definition: Json, where: str = "top level") -> Iterator[tuple[str, Json]]:
    """The definition and each state machine nested in it (a Map's ItemProcessor, a
    Parallel's branches): transitions cannot leave the scope they are in."""
    yield where, definition
    for name, state in definition["States"].items():
        nested = [state.get("ItemProcessor"), state.get("Iterator"), *state.get("Branches", [])]
        for inner in nested:
            if inner is not None:
                yield from scopes(inner, name)


def all_states(definition: Json) -> dict[str, Json]:
    """Every state by name: Step Functions wants names unique across all scopes."""
    found: dict[str, Json] = {}
    for _, scope in scopes(definition):
        for name, state in scope["States"].items():
            assert name not in found, f"two states are named {name}"
            found[name] = state
    return found


def tasks(definition: Json) -> dict[str, Json]:
    return {n: s for n, s in all_states(definition).items() if s["Type"] == "Task"}


def the_map(definition: Json) -> Json:
    [state] = [s for s in all_states(definition).values() if s["Type"] == "Map"]
    return state


def shard_task(definition: Json) -> Json:
    processor = the_map(definition)["ItemProcessor"]
    state: Json = processor["States"][processor["StartAt"]]
    return state


def transitions(state: Json) -> list[str]:
    """The states STATE may go to next: Next, a Choice's rules and Default, its Catch."""
    rules = [*state.get("Choices", []), *state.get("Catch", [])]
    targets = [state.get("Next"), state.get("Default"), *(r.get("Next") for r in rules)]
    return [t for t in targets if t is not None]


def fields(payload: Json) -> set[str]:
    """A payload's keys as its function receives them (a ".$" key is a path's value)."""
    return {key.removesuffix(".$") for key in payload}


def payloads(definition: Json) -> dict[str, set[str]]:
    """The fields each Task sends its function: its Payload's keys or, for a Map's first
    state passing its whole input on, the keys of the Map's ItemSelector (that input)."""
    found: dict[str, set[str]] = {}
    for name, state in all_states(definition).items():
        if state["Type"] == "Map":
            processor = state["ItemProcessor"]
            first = processor["States"][processor["StartAt"]]
            if first.get("Parameters", {}).get("Payload.$") == "$":
                found[processor["StartAt"]] = fields(state["ItemSelector"])
        elif state["Type"] == "Task" and "Payload" in state.get("Parameters", {}):
            found[name] = fields(state["Parameters"]["Payload"])
    return found


def invoked(template: Json, machine: Json, task: Json) -> str:
    """The logical id of the function TASK invokes, through DefinitionSubstitutions."""
    assert task["Resource"] == LAMBDA_INVOKE, task["Resource"]
    match = PLACEHOLDER.fullmatch(task["Parameters"]["FunctionName"])
    assert match, f"FunctionName {task['Parameters']['FunctionName']} is no placeholder"
    value = machine["DefinitionSubstitutions"][match.group(1)]
    assert set(value) == {"Fn::GetAtt"}, value
    logical_id, attribute = value["Fn::GetAtt"]
    assert attribute == "Arn", value
    assert template["Resources"][logical_id]["Type"] == "AWS::Serverless::Function"
    return str(logical_id)


def handlers(template: Json, machine: Json, definition: Json) -> dict[str, str]:
    """Task name -> the Handler of the function it invokes."""
    return {
        name: template["Resources"][invoked(template, machine, task)]["Properties"]["Handler"]
        for name, task in tasks(definition).items()
    }


def clean_up(definition: Json) -> tuple[str, Json]:
    """The one Task that hands the merge function an error: the failure path."""
    found = [
        (name, state)
        for name, state in definition["States"].items()
        if state["Type"] == "Task" and "error" in fields(state["Parameters"].get("Payload", {}))
    ]
    assert len(found) == 1, f"clean-up tasks: {[name for name, _ in found]}"
    return found[0]


def plan_location(template: Json, machine: Json, definition: Json) -> str:
    """Where the plan step puts the PlannedRun its function returns: its ResultPath,
    then the ResultSelector key that takes the Lambda response's Payload."""
    [plan] = [
        tasks(definition)[name]
        for name, handler in handlers(template, machine, definition).items()
        if handler == PLAN_HANDLER
    ]
    [key] = [k for k, v in plan["ResultSelector"].items() if v == "$.Payload"]
    return f"{plan['ResultPath']}.{key.removesuffix('.$')}"


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for inner in value.values():
            yield from strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from strings(inner)


def plausible(template: Json, value: Any) -> str:
    """A value like the one CloudFormation substitutes at deploy time."""
    if isinstance(value, str):
        return value
    [(function, argument)] = value.items()
    if function == "Fn::GetAtt":
        logical_id, attribute = argument
        assert template["Resources"][logical_id]["Type"] == "AWS::Serverless::Function"
        assert attribute == "Arn"
        return f"arn:aws:lambda:us-east-1:123456789012:function:sklearn-serverless-{logical_id}"
    if function == "Fn::Sub" and isinstance(argument, str):
        return PLACEHOLDER.sub(lambda m: str(PSEUDO_PARAMETERS[m.group(1)]), argument)
    raise AssertionError(f"no plausible value for {value!r}")


@functools.cache
def state_machine_schema() -> Json:
    schema: Json = json.loads(
        importlib.resources.files(cfnlint.data.schemas.other.step_functions)
        .joinpath("statemachine.json")
        .read_text(encoding="utf-8")
    )
    return schema


def schema_errors(definition: Json) -> list[str]:
    """cfn-lint's rule E3601 (StateMachineDefinition) on DEFINITION: its bundled schema,
    whose refs resolve within itself, through cfn-lint's own validator."""
    schema = state_machine_schema()
    resolver = RefResolver.from_schema(schema, store={"definition": schema})
    validator = CfnTemplateValidator(schema=schema, resolver=resolver)
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(definition)]


@pytest.fixture
def substituted(template: Json, machine: Json, text: str) -> Json:
    """The definition as Step Functions receives it: placeholders replaced."""
    values = {k: plausible(template, v) for k, v in machine["DefinitionSubstitutions"].items()}
    parsed: Json = json.loads(PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text))
    return parsed


# -- the schema ---------------------------------------------------------------------------


def test_the_definition_is_valid_under_cfn_lints_state_machine_schema(substituted: Json) -> None:
    # E3601 swaps in a JSONata schema for a JSONata machine; this one is JSONPath.
    assert substituted.get("QueryLanguage", "JSONPath") == "JSONPath"
    assert not PLACEHOLDER.search(json.dumps(substituted)), "a placeholder was left"
    assert schema_errors(substituted) == []


MISSPELLINGS: dict[str, tuple[Callable[[Json], Json], str, str]] = {
    "top-level-task": (lambda d: d["States"][d["StartAt"]], "Resource", "Resorce"),
    "map": (the_map, "MaxConcurrencyPath", "MaxConcurencyPath"),
    "task-inside-the-map": (shard_task, "Resource", "Resorce"),
}


@pytest.mark.parametrize("where", list(MISSPELLINGS))
def test_the_schema_rejects_a_misspelled_state_field(substituted: Json, where: str) -> None:
    locate, field, typo = MISSPELLINGS[where]
    broken = copy.deepcopy(substituted)
    state = locate(broken)
    state[typo] = state.pop(field)

    errors = schema_errors(broken)

    assert any(repr(typo) in e for e in errors), errors


# -- the template's side ------------------------------------------------------------------


def test_every_placeholder_is_a_substitution_and_every_substitution_is_used(
    machine: Json, text: str
) -> None:
    used = set(PLACEHOLDER.findall(text))
    assert used
    assert used == set(machine["DefinitionSubstitutions"])


def test_every_task_invokes_a_template_function_whose_handler_is_in_its_code(
    template: Json, machine: Json, definition: Json
) -> None:
    invoked_ids = set()
    for name, task in tasks(definition).items():
        function_id = invoked(template, machine, task)
        invoked_ids.add(function_id)
        properties = template["Resources"][function_id]["Properties"]
        module, attribute = properties["Handler"].rsplit(".", 1)
        # Parsed, not imported: the module's top level makes AWS clients.
        path = (ROOT / properties["CodeUri"] / module.replace(".", "/")).with_suffix(".py")
        assert path.is_file(), f"{name}: no {path.relative_to(ROOT)}"
        tree = ast.parse(path.read_text())
        defined = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == attribute]
        assert len(defined) == 1, f"{name}: {module} defines no function {attribute}"
        assert [a.arg for a in defined[0].args.args][:1] == ["event"], f"{name}: {attribute}"
        assert len(defined[0].args.args) == 2, f"{name}: {attribute} takes (event, context)"
    # Every function the substitutions name is one the definition invokes.
    named = {
        v["Fn::GetAtt"][0]
        for v in machine["DefinitionSubstitutions"].values()
        if isinstance(v, dict) and "Fn::GetAtt" in v
    }
    assert invoked_ids == named


def test_the_data_bucket_substitution_is_the_data_buckets_name(
    template: Json, machine: Json
) -> None:
    # A Ref would be circular: the bucket notifies the S3 function, which names this
    # state machine, whose definition would name the bucket.
    bucket = template["Resources"]["DataBucket"]["Properties"]["BucketName"]
    assert machine["DefinitionSubstitutions"]["DataBucket"] == bucket


# -- transitions ----------------------------------------------------------------------------


def test_every_transition_names_a_state_of_its_own_scope(definition: Json) -> None:
    for where, scope in scopes(definition):
        names = set(scope["States"])
        assert scope["StartAt"] in names, f"{where}: StartAt {scope['StartAt']}"
        for name, state in scope["States"].items():
            for target in transitions(state):
                assert target in names, f"{where}: {name} goes to {target}, not in its scope"


def test_every_state_is_reachable_from_its_scopes_start(definition: Json) -> None:
    for where, scope in scopes(definition):
        reached: set[str] = set()
        todo = [scope["StartAt"]]
        while todo:
            name = todo.pop()
            if name not in reached:
                reached.add(name)
                todo += transitions(scope["States"][name])
        unreachable = set(scope["States"]) - reached
        assert not unreachable, f"{where}: nothing leads to {sorted(unreachable)}"


# -- retries and failures -------------------------------------------------------------------


def test_every_task_retries_lambda_throttling_with_a_growing_backoff(definition: Json) -> None:
    for name, task in tasks(definition).items():
        # Step Functions uses the first retrier that names the error.
        retriers = [
            r
            for r in task.get("Retry", [])
            if THROTTLED in r["ErrorEquals"] or r["ErrorEquals"] == ["States.ALL"]
        ]
        assert retriers, f"{name} does not retry {THROTTLED}"
        assert retriers[0].get("BackoffRate", DEFAULT_BACKOFF_RATE) > 1, name
        assert retriers[0].get("MaxAttempts", DEFAULT_MAX_ATTEMPTS) > 0, name


def test_every_step_that_can_fail_is_caught_into_the_clean_up(definition: Json) -> None:
    cleaner, cleaning = clean_up(definition)
    error_path = cleaning["Parameters"]["Payload"]["error.$"]
    steps = {
        name: state
        for name, state in definition["States"].items()
        if state["Type"] in ("Task", "Map", "Parallel") and name != cleaner
    }
    assert steps
    for name, state in steps.items():
        catchers = [c for c in state.get("Catch", []) if c["ErrorEquals"] == ["States.ALL"]]
        assert [c["Next"] for c in catchers] == [cleaner], f"{name} is not caught into {cleaner}"
        # The clean-up reads the error where the Catch puts it, beside the run's input.
        assert catchers[0].get("ResultPath") == error_path, name


def test_the_clean_up_hands_the_error_to_the_merge_function_then_fails(
    template: Json, machine: Json, definition: Json
) -> None:
    cleaner, cleaning = clean_up(definition)
    handler_of = handlers(template, machine, definition)
    states = definition["States"]

    assert handler_of[cleaner] == FINISH_HANDLER
    assert "End" not in cleaning
    ends = [cleaning["Next"], *(c["Next"] for c in cleaning.get("Catch", []))]
    assert all(states[n]["Type"] == "Fail" for n in ends), ends
    # finish() cleans up when it gets an error and merges when it does not: only the
    # clean-up may pass one.
    merges = [n for n, h in handler_of.items() if h == FINISH_HANDLER and n != cleaner]
    assert merges
    for name, sent in payloads(definition).items():
        assert ("error" in sent) == (name == cleaner), name


# -- the Map ------------------------------------------------------------------------------


def test_the_map_is_distributed_and_reads_the_plan_from_the_data_bucket(
    template: Json, machine: Json, definition: Json
) -> None:
    state = the_map(definition)
    config = state["ItemProcessor"]["ProcessorConfig"]
    reader = state["ItemReader"]

    assert config["Mode"] == "DISTRIBUTED"
    # A shard may take the scorer's whole timeout (up to 900 s): past an Express
    # child's 5 minutes.
    assert config["ExecutionType"] == "STANDARD"
    assert reader["Resource"] == "arn:aws:states:::s3:getObject"
    assert reader["ReaderConfig"]["InputType"] == "JSON"
    assert reader["Parameters"]["Bucket"] == "${DataBucket}"
    plan = plan_location(template, machine, definition)
    assert reader["Parameters"]["Key.$"] == f"{plan}.items_key"


def test_the_maps_concurrency_comes_from_the_plan_not_a_literal(
    template: Json, machine: Json, definition: Json
) -> None:
    state = the_map(definition)

    assert "MaxConcurrency" not in state
    plan = plan_location(template, machine, definition)
    assert state["MaxConcurrencyPath"] == f"{plan}.concurrency"


def test_the_map_tolerates_no_failed_shard(definition: Json) -> None:
    state = the_map(definition)

    # Absent, either threshold is 0.
    assert state.get("ToleratedFailureCount", 0) == 0
    assert state.get("ToleratedFailurePercentage", 0) == 0
    assert "ToleratedFailureCountPath" not in state
    assert "ToleratedFailurePercentagePath" not in state


# -- payloads -------------------------------------------------------------------------------


def test_every_payload_and_the_item_selector_are_step_input_fields(definition: Json) -> None:
    known = set(StepInput.model_fields)
    required = {n for n, f in StepInput.model_fields.items() if f.is_required()}
    sent = payloads(definition)

    assert set(sent) == set(tasks(definition)), "a Task's payload is not a known shape"
    for name, keys in sent.items():
        assert required <= keys <= known, f"{name} sends {sorted(keys)}; StepInput: {known}"
    selected = fields(the_map(definition)["ItemSelector"])
    assert required <= selected <= known, sorted(selected)


def test_paths_into_the_plan_name_planned_run_fields(
    template: Json, machine: Json, definition: Json
) -> None:
    plan = plan_location(template, machine, definition)
    known = set(PlannedRun.model_fields)
    used = {
        value.removeprefix(f"{plan}.").split(".")[0]
        for value in strings(definition)
        if value.startswith(f"{plan}.")
    }
    assert used, f"nothing reads {plan}"
    assert used <= known, f"not fields of PlannedRun: {used - known}"
    outcomes = set(get_args(PlannedRun.model_fields["outcome"].annotation))
    for state in all_states(definition).values():
        for rule in state.get("Choices", []):
            if rule.get("Variable") == f"{plan}.outcome":
                assert rule["StringEquals"] in outcomes, rule
