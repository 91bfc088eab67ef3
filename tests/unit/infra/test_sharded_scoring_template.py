"""Sharded scoring in the template as CloudFormation receives it (aws-sam-translator).

The S3 function hands a file over ShardAboveBytes to ShardedScoringStateMachine, which
runs ShardPlanFunction, ShardScoreFunction in a Distributed Map, and ShardMergeFunction.
These tests assert each piece may do its step and no more, that failures land in the
batch DLQ, and that the parameters reach the code that reads them, once with the
defaults and once with values unlike any default.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

import pytest

from batch_scoring.settings import BatchSettings, ShardSettings
from model_store.batch.handover import (
    DEFAULT_CONCURRENCY,
    DEFAULT_SHARD_ABOVE_BYTES,
    DEFAULT_SHARD_ROWS,
)
from model_store.batch.sharded import STAGING_PREFIX
from tests.support.cfn_stack import (
    DATA_BUCKET_ARN,
    MODEL_BUCKET_ARN,
    NO_VALUE,
    SUB_VARIABLE,
    Stack,
    as_list,
    transformed,
)
from tests.support.sam_template import (
    parameter_values,
)

# Strings, as `sam deploy --parameter-overrides` passes them; ShardConcurrency over the
# reservation, so that the cap shows.
OVERRIDES: dict[str, Any] = {
    "BatchReservedConcurrency": "4",
    "ShardConcurrency": "25",
    "ShardAboveBytes": "1048576",
    "ShardRows": "5000",
    "ModelPrefix": "registry/",
    "ModelSigningKeyArn": (
        "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    ),
}
STATE_MACHINE = "ShardedScoringStateMachine"
S3_FUNCTION = "BatchScoringFunction"
PLAN, SCORE, MERGE = "ShardPlanFunction", "ShardScoreFunction", "ShardMergeFunction"
STEP_FUNCTIONS = (PLAN, SCORE, MERGE)
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:{}"
# The only managed policies SAM attaches to these roles: logs and traces, nothing of S3,
# Lambda or Step Functions, so the inline statements are all the access there is.
HARMLESS_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}
WRITES = ("s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject", "s3:DeleteObjectVersion")
READS = ("s3:GetObject", "s3:GetObjectVersion")


@pytest.fixture(scope="module", params=["defaults", "overrides"])
def stack(request: pytest.FixtureRequest) -> Stack:
    return transformed(OVERRIDES if request.param == "overrides" else {})


@pytest.fixture(scope="module")
def defaults() -> dict[str, Any]:
    return parameter_values({})


# -- helpers ------------------------------------------------------------------------------


def role_of(stack: Stack, logical_id: str) -> str:
    """The role of a function (Role) or a state machine (RoleArn)."""
    properties = stack.props(logical_id)
    role = properties.get("Role", properties.get("RoleArn"))
    assert isinstance(role, dict), f"{logical_id} has no role of the stack's"
    role_id, attribute = role["Fn::GetAtt"]
    assert attribute == "Arn"
    assert stack.resources[role_id]["Type"] == "AWS::IAM::Role"
    return str(role_id)


def statements_of(stack: Stack, logical_id: str) -> list[dict[str, Any]]:
    """The inline statements of LOGICAL_ID's role, as this stack's conditions leave them."""
    role = stack.props(role_of(stack, logical_id))
    assert set(role.get("ManagedPolicyArns", [])) <= HARMLESS_MANAGED_POLICIES, logical_id
    return [
        s
        for p in role.get("Policies", [])
        for s in stack.statements(p["PolicyDocument"]["Statement"])
    ]


def allowed(stack: Stack, logical_id: str) -> dict[str, set[str]]:
    """Action -> the rendered resources LOGICAL_ID's role allows it on."""
    access: dict[str, set[str]] = {}
    for statement in statements_of(stack, logical_id):
        assert "NotAction" not in statement, logical_id
        assert "NotResource" not in statement, logical_id
        if statement["Effect"] != "Allow":
            continue
        resources = {stack.render(r) for r in as_list(statement["Resource"])}
        for action in as_list(statement["Action"]):
            access.setdefault(action, set()).update(resources)
    return access


def may(access: dict[str, set[str]], action: str, arn: str) -> bool:
    """Whether ACCESS allows ACTION on ARN, IAM wildcards included."""
    return any(
        fnmatchcase(action, granted) and any(fnmatchcase(arn, r) for r in resources)
        for granted, resources in access.items()
    )


def data_key(prefix: str) -> str:
    """The ARN of an object under PREFIX of the data bucket."""
    return f"{DATA_BUCKET_ARN}/{prefix}some-run/00000.csv"


def function_arn(stack: Stack, function_id: str) -> str:
    return FUNCTION_ARN.format(stack.render({"Ref": function_id}))


def references(value: Any) -> set[str]:
    """The names VALUE refers to through Ref, Fn::GetAtt and Fn::Sub."""
    if isinstance(value, list):
        return set().union(*(references(v) for v in value))
    if not isinstance(value, dict):
        return set()
    found: set[str] = set()
    for key, inner in value.items():
        if key == "Ref":
            found.add(inner)
        elif key == "Fn::GetAtt":
            found.add(inner[0] if isinstance(inner, list) else inner.split(".", 1)[0])
        elif key == "Fn::Sub":
            text, variables = (inner, {}) if isinstance(inner, str) else inner
            names = {v.split(".", 1)[0] for v in SUB_VARIABLE.findall(text) if v not in variables}
            found |= names | references(variables)
        else:
            found |= references(inner)
    return found


def dependencies(stack: Stack, logical_id: str) -> set[str]:
    """Every resource LOGICAL_ID waits for, directly or through others."""
    found: set[str] = set()
    todo = [logical_id]
    while todo:
        resource = stack.resources[todo.pop()]
        direct = references(resource) | set(as_list(resource.get("DependsOn", [])))
        new = (direct & set(stack.resources)) - found
        found |= new
        todo += new
    return found


def batch_dlq(stack: Stack) -> str:
    """The queue failed S3 events go to: the batch DLQ."""
    [config] = [
        c["Properties"]
        for c in stack.of_type("AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": S3_FUNCTION}
    ]
    queue_id, attribute = config["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"]
    assert attribute == "Arn"
    return str(queue_id)


def sharded_run_rule(stack: Stack) -> tuple[str, dict[str, Any]]:
    rules = [
        (logical_id, rule["Properties"])
        for logical_id, rule in stack.of_type("AWS::Events::Rule").items()
        if "aws.states" in rule["Properties"].get("EventPattern", {}).get("source", [])
    ]
    assert len(rules) == 1, f"rules on Step Functions events: {[r for r, _ in rules]}"
    return rules[0]


def use_environment(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


# -- the S3 function and the state machine --------------------------------------------------


def test_the_s3_function_may_start_executions_of_this_state_machine_only(stack: Stack) -> None:
    starts = [
        s
        for s in statements_of(stack, S3_FUNCTION)
        if any(fnmatchcase("states:StartExecution", a) for a in as_list(s["Action"]))
    ]

    assert len(starts) == 1, starts
    [start] = starts
    assert start["Effect"] == "Allow"
    assert as_list(start["Action"]) == ["states:StartExecution"]
    assert as_list(start["Resource"]) == [{"Ref": STATE_MACHINE}]  # a state machine's ARN
    # Its repeated events look the run up: executions of this state machine only.
    name = stack.render(stack.props(STATE_MACHINE)["StateMachineName"])
    executions = f"arn:aws:states:us-east-1:123456789012:execution:{name}:*"
    access = allowed(stack, S3_FUNCTION)
    assert {a for a in access if a.startswith("states:")} == {
        "states:StartExecution",
        "states:DescribeExecution",
    }
    assert access["states:DescribeExecution"] == {executions}
    variables = stack.props(S3_FUNCTION)["Environment"]["Variables"]
    assert variables["SHARDING_STATE_MACHINE_ARN"] == {"Ref": STATE_MACHINE}


def test_the_state_machine_names_the_three_step_functions_and_not_the_s3_function(
    stack: Stack,
) -> None:
    """The S3 function names the state machine: a reference back would be circular."""
    machine = stack.resources[STATE_MACHINE]
    role = stack.resources[role_of(stack, STATE_MACHINE)]
    functions = {
        name
        for name in references(machine) | references(role)
        if stack.resources.get(name, {}).get("Type") == "AWS::Lambda::Function"
    }
    substituted = {
        name
        for value in stack.props(STATE_MACHINE)["DefinitionSubstitutions"].values()
        for name in references(value)
        if name in stack.resources
    }

    assert functions == set(STEP_FUNCTIONS)
    assert substituted == set(STEP_FUNCTIONS)
    waits_for = dependencies(stack, STATE_MACHINE)
    assert S3_FUNCTION not in waits_for
    assert role_of(stack, S3_FUNCTION) not in waits_for
    assert STATE_MACHINE not in waits_for
    for function_id in STEP_FUNCTIONS:
        assert STATE_MACHINE not in dependencies(stack, function_id), function_id


# -- least privilege per step ----------------------------------------------------------------


def test_the_plan_function_writes_no_outputs(stack: Stack) -> None:
    access = allowed(stack, PLAN)

    assert may(access, "s3:PutObject", data_key(STAGING_PREFIX))  # the plan itself
    for prefix in ("predictions/", "errors/"):
        for action in WRITES:
            assert not may(access, action, data_key(prefix)), (action, prefix)


def test_the_score_function_writes_only_staging_parts_and_deletes_nothing(stack: Stack) -> None:
    access = allowed(stack, SCORE)
    written = {r for a, resources in access.items() if a in WRITES for r in resources}

    assert written == {f"{DATA_BUCKET_ARN}/{STAGING_PREFIX}*"}
    for prefix in ("predictions/", "errors/", "reports/"):
        for action in WRITES:
            assert not may(access, action, data_key(prefix)), (action, prefix)
    assert not [a for a in access if a.startswith("s3:Delete")]
    assert may(access, "s3:GetObject", data_key("incoming/"))  # the shard's bytes


def test_the_merge_function_reads_no_input_and_no_model(stack: Stack) -> None:
    access = allowed(stack, MERGE)

    for action in READS:
        assert not may(access, action, data_key("incoming/")), action
    model_resources = [
        (a, r) for a, resources in access.items() for r in resources if MODEL_BUCKET_ARN in r
    ]
    assert not model_resources
    assert not [a for a in access if a.startswith("kms:")]
    # The tallies add up without the model: the merge reads staging and writes outputs.
    assert may(access, "s3:GetObject", data_key(STAGING_PREFIX))
    assert may(access, "s3:PutObject", data_key("predictions/"))


@pytest.mark.parametrize("function_id", STEP_FUNCTIONS)
def test_no_step_function_may_start_executions(stack: Stack, function_id: str) -> None:
    access = allowed(stack, function_id)

    assert access, f"{function_id} has no statements to check"
    assert not [a for a in access if a.startswith("states:") or a == "*"]


def test_the_state_machine_invokes_exactly_the_three_step_functions(stack: Stack) -> None:
    access = allowed(stack, STATE_MACHINE)
    invocable = access["lambda:InvokeFunction"]
    others = [f for f in stack.of_type("AWS::Lambda::Function") if f not in STEP_FUNCTIONS]

    assert {a for a in access if a.startswith("lambda:")} == {"lambda:InvokeFunction"}
    # SAM's LambdaInvokePolicy ends in * for the function's versions and aliases.
    assert invocable == {f"{function_arn(stack, f)}*" for f in STEP_FUNCTIONS}
    assert S3_FUNCTION in others
    for function_id in others:
        assert not may(access, "lambda:InvokeFunction", function_arn(stack, function_id))


def test_the_state_machine_reads_only_staging_of_the_data_bucket(stack: Stack) -> None:
    access = allowed(stack, STATE_MACHINE)

    s3 = {a: r for a, r in access.items() if a.startswith("s3:")}
    assert s3 == {"s3:GetObject": {f"{DATA_BUCKET_ARN}/{STAGING_PREFIX}*"}}


def test_the_state_machine_starts_only_its_own_map_children(stack: Stack) -> None:
    access = allowed(stack, STATE_MACHINE)
    name = stack.render(stack.props(STATE_MACHINE)["StateMachineName"])

    assert access["states:StartExecution"] == {
        f"arn:aws:states:us-east-1:123456789012:stateMachine:{name}"
    }


# -- failed runs ------------------------------------------------------------------------------


def test_failed_timed_out_and_aborted_runs_of_this_state_machine_go_to_the_batch_dlq(
    stack: Stack,
) -> None:
    _, rule = sharded_run_rule(stack)
    pattern = rule["EventPattern"]

    assert rule.get("State", "ENABLED") == "ENABLED"
    assert pattern["source"] == ["aws.states"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert sorted(pattern["detail"]["status"]) == ["ABORTED", "FAILED", "TIMED_OUT"]
    assert pattern["detail"]["stateMachineArn"] == [{"Ref": STATE_MACHINE}]
    targets = [t["Arn"] for t in rule["Targets"]]
    assert targets == [{"Fn::GetAtt": [batch_dlq(stack), "Arn"]}]


def test_only_that_rule_may_send_to_the_dlq(stack: Stack) -> None:
    queue_id = batch_dlq(stack)
    rule_id, _ = sharded_run_rule(stack)
    [policy] = [
        p["Properties"]["PolicyDocument"]
        for p in stack.of_type("AWS::SQS::QueuePolicy").values()
        if {"Ref": queue_id} in p["Properties"]["Queues"]
    ]
    grants = [s for s in stack.statements(policy["Statement"]) if s["Effect"] == "Allow"]

    assert grants
    for grant in grants:
        assert grant["Principal"] == {"Service": "events.amazonaws.com"}
        assert as_list(grant["Action"]) == ["sqs:SendMessage"]
        assert as_list(grant["Resource"]) == [{"Fn::GetAtt": [queue_id, "Arn"]}]
        assert grant["Condition"] == {
            "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]}}
        }


def test_the_dlq_depth_alarm_watches_the_queue_the_rule_fills(stack: Stack) -> None:
    queue_id = batch_dlq(stack)
    watching = [
        a["Properties"]
        for a in stack.of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Namespace") == "AWS/SQS"
        and a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
        and {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}
        in a["Properties"].get("Dimensions", [])
    ]

    assert len(watching) == 1
    assert watching[0]["Threshold"] == 1
    assert watching[0]["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


# -- concurrency and sizes ---------------------------------------------------------------------


def test_the_shard_scorer_reserves_what_the_batch_function_does(stack: Stack) -> None:
    """Empty by default (accounts with low limits reject any reservation)."""
    properties = stack.props(SCORE)
    reserved = stack.choose(properties.get("ReservedConcurrentExecutions", NO_VALUE))
    parameter = stack.parameters["BatchReservedConcurrency"]

    if parameter == "":
        assert reserved == NO_VALUE
    else:
        assert reserved != NO_VALUE
        assert stack.render(reserved) == parameter


def test_the_plan_caps_the_maps_concurrency_at_the_reserved_concurrency(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    variables = stack.variables(PLAN)
    concurrency = int(stack.parameters["ShardConcurrency"])
    reserved = stack.parameters["BatchReservedConcurrency"]

    assert variables["SHARD_CONCURRENCY"] == str(concurrency)
    assert variables["SHARD_RESERVED_CONCURRENCY"] == reserved
    # The plan's own settings, read from the function's environment.
    use_environment(monkeypatch, variables)
    settings = ShardSettings()
    assert settings.concurrency == (min(concurrency, int(reserved)) if reserved else concurrency)
    assert settings.shard_rows == int(stack.parameters["ShardRows"])


def test_the_s3_function_shards_files_over_shard_above_bytes(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    variables = stack.variables(S3_FUNCTION)

    use_environment(monkeypatch, variables)
    settings = BatchSettings()
    assert settings.shard_above_bytes == int(stack.parameters["ShardAboveBytes"])
    assert settings.sharding_state_machine_arn == stack.render({"Ref": STATE_MACHINE})


def test_the_data_bucket_expires_staging_objects(stack: Stack) -> None:
    """A stopped run leaves its staging objects behind: nothing else removes them."""
    rules = stack.props("DataBucket")["LifecycleConfiguration"]["Rules"]
    staging = [
        r for r in rules if r.get("Prefix", r.get("Filter", {}).get("Prefix")) == STAGING_PREFIX
    ]

    assert len(staging) == 1, staging
    [rule] = staging
    assert rule["Status"] == "Enabled"
    assert int(stack.render(rule["ExpirationInDays"])) >= 1


@pytest.mark.parametrize(
    ("parameter", "in_code"),
    [
        ("ShardAboveBytes", DEFAULT_SHARD_ABOVE_BYTES),
        ("ShardRows", DEFAULT_SHARD_ROWS),
        ("ShardConcurrency", DEFAULT_CONCURRENCY),
    ],
)
def test_the_templates_shard_defaults_are_the_codes(
    defaults: dict[str, Any], parameter: str, in_code: int
) -> None:
    """A deployed stack and a local run (no variable set) shard alike."""
    assert int(defaults[parameter]) == in_code
