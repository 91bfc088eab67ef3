"""The SAM template as CloudFormation receives it: expanded by aws-sam-translator.

`sam deploy` uploads the packaged template (local CodeUri/ContentUri replaced by S3 URIs)
and CloudFormation's AWS::Serverless transform expands it with the stack's parameter
values. These tests run the same translator offline (no managed policy lookups, no
network) and assert on the CloudFormation it produces, once with the defaults and once
with overrides unlike any default, so a property that must follow a parameter cannot
pass by holding the default's value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from aws_lambda_powertools import Metrics

from batch_scoring import observability as batch_observability
from model_store.batch import BatchReport, Drift, FeatureDrift, SourceInfo
from model_store.batch.report import ModelRef
from model_store.observability import COLD_START, record_cold_start
from predict_api import observability as api_observability
from tests.support.cfn_stack import (
    DATA_BUCKET_ARN,
    MODEL_BUCKET_ARN,
    NO_VALUE,
    Stack,
    as_list,
    transformed,
)
from tests.support.events import load_event

# Strings, as `sam deploy --parameter-overrides` passes them.
OVERRIDES: dict[str, Any] = {
    "StageName": "v7",
    "ModelPrefix": "registry/",
    "ThrottleRateLimit": "7",
    "ThrottleBurstLimit": "13",
    "QuotaPerDay": "1234",
    "BatchMaxRetries": "1",
    "OutputRetentionDays": "45",
    "ServingRuntime": "sklearn",
    "ModelSigningKeyArn": (
        "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    ),
    "ModelPublisherRoleArn": "arn:aws:iam::123456789012:role/model-publisher",
    "ApiReservedConcurrency": "17",
    "BatchReservedConcurrency": "3",
    "ApiAccessLogs": "true",
    "DriftThreshold": "0.35",
}
FUNCTIONS = ("PredictApiFunction", "BatchScoringFunction")
# The sharded run's steps (tests/unit/infra/test_sharded_scoring_template.py).
STEP_FUNCTIONS = ("ShardPlanFunction", "ShardScoreFunction", "ShardMergeFunction")
FUNCTION_ROUTES = {
    ("/predict", "post"),
    ("/batch_predict", "post"),
    ("/model", "get"),
    ("/docs", "get"),
    ("/openapi.json", "get"),
}
MOCK_ROUTES = {("/health", "get")}  # answered by API Gateway: no key, no Lambda
ROUTES = FUNCTION_ROUTES | MOCK_ROUTES
# The docs show the request contract, nothing secret (model internals stay on keyed
# /model), and a browser cannot send a key to open them.
DOCS_ROUTES = {("/docs", "get"), ("/openapi.json", "get")}
PUBLIC_ROUTES = MOCK_ROUTES | DOCS_ROUTES


@pytest.fixture(scope="module", params=["defaults", "overrides"])
def stack(request: pytest.FixtureRequest) -> Stack:
    return transformed(OVERRIDES if request.param == "overrides" else {})


# -- API --------------------------------------------------------------------------------


def operations(stack: Stack) -> dict[tuple[str, str], dict[str, Any]]:
    _, api = stack.only("AWS::ApiGateway::RestApi")
    paths = api["Properties"]["Body"]["paths"]
    return {
        (path, method): operation
        for path, methods in paths.items()
        for method, operation in methods.items()
        if method != "parameters"
    }


def test_api_key_is_required_on_every_route_but_health_and_the_docs(stack: Stack) -> None:
    _, api = stack.only("AWS::ApiGateway::RestApi")
    body = api["Properties"]["Body"]
    assert body["securityDefinitions"]["api_key"] == {
        "type": "apiKey",
        "name": "x-api-key",
        "in": "header",
    }
    for route, operation in operations(stack).items():
        requirements = operation.get("security", [])
        if route in PUBLIC_ROUTES:
            assert all("api_key" not in r for r in requirements), route
        else:
            assert {"api_key": []} in requirements, f"{route} does not require an API key"
    # No method defined outside the OpenAPI body can slip past the key.
    for logical_id, method in stack.of_type("AWS::ApiGateway::Method").items():
        assert method["Properties"].get("ApiKeyRequired") is True, logical_id


def test_the_five_function_routes_integrate_with_the_predict_function(stack: Stack) -> None:
    routes = operations(stack)
    assert set(routes) == ROUTES
    for route, operation in routes.items():
        if route in MOCK_ROUTES:
            continue
        integration = operation["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy", route
        assert integration["httpMethod"] == "POST", route
        assert "${PredictApiFunction.Arn}" in integration["uri"]["Fn::Sub"], route
    # API Gateway may invoke the function for each of them.
    permitted = {
        stack.render(p["Properties"]["SourceArn"])
        for p in stack.of_type("AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Ref": "PredictApiFunction"}
        and p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    }
    for path, method in FUNCTION_ROUTES:
        assert any(arn.endswith(f"/{method.upper()}{path}") for arn in permitted), (path, method)


def test_health_is_answered_by_api_gateway_and_never_invokes_the_function(stack: Stack) -> None:
    """Unkeyed requests are unthrottled by usage plans: they must not reach Lambda."""
    operation = operations(stack)[("/health", "get")]
    integration = operation["x-amazon-apigateway-integration"]
    assert integration["type"] == "mock"
    assert integration["requestTemplates"]["application/json"] == '{"statusCode": 200}'
    response = integration["responses"]["default"]
    assert response["statusCode"] == "200"
    assert response["responseTemplates"]["application/json"] == '{"status":"ok"}'
    assert "uri" not in integration
    permitted = [
        stack.render(p["Properties"]["SourceArn"])
        for p in stack.of_type("AWS::Lambda::Permission").values()
        if "SourceArn" in p["Properties"]
    ]
    assert permitted
    assert not any(arn.endswith("/GET/health") for arn in permitted)


def test_access_logs_are_json_with_the_key_id_status_and_latency_only_when_asked(
    stack: Stack,
) -> None:
    _, stage = stack.only("AWS::ApiGateway::Stage")
    setting = stack.choose(stage["Properties"].get("AccessLogSetting", NO_VALUE))
    groups = [
        logical_id
        for logical_id, group in stack.of_type("AWS::Logs::LogGroup").items()
        if "apigateway" in stack.render(group["Properties"]["LogGroupName"])
    ]
    # Declaring the account's CloudWatch role would overwrite an account-wide setting.
    assert not stack.of_type("AWS::ApiGateway::Account")
    if stack.parameters["ApiAccessLogs"] != "true":
        assert setting == NO_VALUE
        assert all(not stack.condition(stack.resources[g]["Condition"]) for g in groups)
        return
    [group_id] = groups
    assert stack.condition(stack.resources[group_id]["Condition"])
    assert setting["DestinationArn"] == {"Fn::GetAtt": [group_id, "Arn"]}
    fields = json.loads(setting["Format"])
    assert fields["apiKeyId"] == "$context.identity.apiKeyId"
    assert fields["status"] == "$context.status"
    assert fields["responseLatency"] == "$context.responseLatency"
    assert fields["requestId"] == "$context.requestId"


def test_usage_plan_is_bound_to_the_stage_with_the_parameter_limits(stack: Stack) -> None:
    api_id, _ = stack.only("AWS::ApiGateway::RestApi")
    stage_id, stage = stack.only("AWS::ApiGateway::Stage")
    assert stage["Properties"]["RestApiId"] == {"Ref": api_id}
    assert stack.render(stage["Properties"]["StageName"]) == str(stack.parameters["StageName"])
    _, plan = stack.only("AWS::ApiGateway::UsagePlan")
    properties = plan["Properties"]
    assert properties["ApiStages"] == [{"ApiId": {"Ref": api_id}, "Stage": {"Ref": stage_id}}]
    throttle, quota = properties["Throttle"], properties["Quota"]
    assert stack.render(throttle["RateLimit"]) == str(stack.parameters["ThrottleRateLimit"])
    assert stack.render(throttle["BurstLimit"]) == str(stack.parameters["ThrottleBurstLimit"])
    assert stack.render(quota["Limit"]) == str(stack.parameters["QuotaPerDay"])
    assert quota["Period"] == "DAY"


def test_usage_plan_key_binds_the_generated_api_key(stack: Stack) -> None:
    key_id, key = stack.only("AWS::ApiGateway::ApiKey")
    plan_id, _ = stack.only("AWS::ApiGateway::UsagePlan")
    assert key["Properties"].get("Enabled") is True
    _, binding = stack.only("AWS::ApiGateway::UsagePlanKey")
    assert binding["Properties"] == {
        "KeyId": {"Ref": key_id},
        "KeyType": "API_KEY",
        "UsagePlanId": {"Ref": plan_id},
    }


# -- storage ----------------------------------------------------------------------------


@pytest.mark.parametrize("bucket_id", ["ModelBucket", "DataBucket"])
def test_bucket_is_encrypted_versioned_and_private(stack: Stack, bucket_id: str) -> None:
    properties = stack.props(bucket_id)
    assert stack.resources[bucket_id]["Type"] == "AWS::S3::Bucket"
    rules = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    algorithms = {r["ServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules}
    assert algorithms
    assert algorithms <= {"AES256", "aws:kms", "aws:kms:dsse"}
    assert properties["VersioningConfiguration"]["Status"] == "Enabled"
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }


@pytest.mark.parametrize("bucket_id", ["ModelBucket", "DataBucket"])
def test_bucket_policy_denies_insecure_transport(stack: Stack, bucket_id: str) -> None:
    policies = [
        p["Properties"]["PolicyDocument"]
        for p in stack.of_type("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    ]
    assert len(policies) == 1, f"{bucket_id} has {len(policies)} bucket policies"
    arn = stack.render({"Fn::GetAtt": [bucket_id, "Arn"]})
    denials = [
        s
        for s in stack.statements(policies[0]["Statement"])
        if s["Effect"] == "Deny"
        and s["Principal"] in ("*", {"AWS": "*"})
        and "s3:*" in as_list(s["Action"])
        and str(s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")).lower()
        == "false"
    ]
    assert len(denials) == 1, f"{bucket_id} does not deny aws:SecureTransport false"
    assert {stack.render(r) for r in as_list(denials[0]["Resource"])} == {arn, f"{arn}/*"}


def test_data_bucket_expires_outputs(stack: Stack) -> None:
    rules = stack.props("DataBucket")["LifecycleConfiguration"]["Rules"]
    by_prefix = {r.get("Prefix", r.get("Filter", {}).get("Prefix")): r for r in rules}
    for prefix in ("predictions/", "errors/", "reports/"):
        assert prefix in by_prefix, f"no lifecycle rule for {prefix}"
        rule = by_prefix[prefix]
        assert rule["Status"] == "Enabled", prefix
        days = stack.render(rule["ExpirationInDays"])
        assert days == str(stack.parameters["OutputRetentionDays"]), prefix
        assert int(days) > 0


def test_csv_uploads_under_incoming_trigger_the_batch_function(stack: Stack) -> None:
    configurations = [
        c
        for c in stack.props("DataBucket")["NotificationConfiguration"]["LambdaConfigurations"]
        if c["Function"] == {"Fn::GetAtt": ["BatchScoringFunction", "Arn"]}
    ]
    assert len(configurations) == 1
    [configuration] = configurations
    assert configuration["Event"] == "s3:ObjectCreated:*"
    rules = configuration["Filter"]["S3Key"]["Rules"]
    # The prefix alone: S3's suffix filter is case-sensitive (.CSV, .csv.gz would be
    # ignored without a trace); the function decides what it takes.
    assert {r["Name"].lower(): r["Value"] for r in rules} == {"prefix": "incoming/"}
    # S3 may invoke it, from this account only.
    permissions = [
        p["Properties"]
        for p in stack.of_type("AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Ref": "BatchScoringFunction"}
        and p["Properties"]["Principal"] == "s3.amazonaws.com"
    ]
    assert len(permissions) == 1
    assert permissions[0]["SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_failed_batch_events_go_to_the_dead_letter_queue(stack: Stack) -> None:
    configs = [
        c["Properties"]
        for c in stack.of_type("AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": "BatchScoringFunction"}
    ]
    assert len(configs) == 1
    [config] = configs
    retries = stack.render(config["MaximumRetryAttempts"])
    assert retries == str(stack.parameters["BatchMaxRetries"])
    queue_id, _ = stack.only("AWS::SQS::Queue")
    queue_arn = {"Fn::GetAtt": [queue_id, "Arn"]}
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == queue_arn
    assert any(
        s["Effect"] == "Allow"
        and "sqs:SendMessage" in as_list(s["Action"])
        and as_list(s["Resource"]) == [queue_arn]
        for s in stack.role_statements("BatchScoringFunction")
    ), "the batch function's role may not send to the DLQ"


# -- IAM --------------------------------------------------------------------------------


def iam_statements(stack: Stack) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for logical_id, role in stack.of_type("AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            statements = stack.statements(policy["PolicyDocument"]["Statement"])
            found += [(logical_id, s) for s in statements]
    for policy_type in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for logical_id, policy in stack.of_type(policy_type).items():
            statements = stack.statements(policy["Properties"]["PolicyDocument"]["Statement"])
            found += [(logical_id, s) for s in statements]
    return found


def test_no_iam_statement_grants_wildcard_actions_or_s3_on_any_resource(stack: Stack) -> None:
    statements = iam_statements(stack)
    assert statements
    for where, statement in statements:
        assert "NotAction" not in statement, where
        assert "NotResource" not in statement, where
        actions = as_list(statement["Action"])
        for action in actions:
            assert action != "*", f"{where} allows every action"
            assert not action.endswith(":*"), f"{where} allows {action}"
        if any(a.startswith("s3:") for a in actions):
            resources = {stack.render(r) for r in as_list(statement["Resource"])}
            assert "*" not in resources, f"{where} allows {actions} on every resource"


def test_api_function_only_reads_the_model_prefix_of_the_model_bucket(stack: Stack) -> None:
    prefix = stack.parameters["ModelPrefix"]
    assert stack.s3_access("PredictApiFunction") == {
        "s3:GetObject": {f"{MODEL_BUCKET_ARN}/{prefix}models/*"},
        "s3:ListBucket": {MODEL_BUCKET_ARN},
    }
    [listing] = [
        s
        for s in stack.role_statements("PredictApiFunction")
        if "s3:ListBucket" in as_list(s["Action"])
    ]
    assert stack.render(listing["Condition"]["StringLike"]["s3:prefix"]) == f"{prefix}models/*"


def test_batch_function_writes_only_outputs_and_reads_only_inputs(stack: Stack) -> None:
    access = stack.s3_access("BatchScoringFunction")
    outputs = {f"{DATA_BUCKET_ARN}/{p}/*" for p in ("predictions", "errors", "reports")}
    inputs = {f"{DATA_BUCKET_ARN}/{p}/*" for p in ("incoming", "reports")}
    models = {f"{MODEL_BUCKET_ARN}/{stack.parameters['ModelPrefix']}models/*"}
    assert access["s3:PutObject"] == outputs
    assert access["s3:GetObject"] == inputs | models
    allowed = {
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListBucket",
    }
    assert set(access) <= allowed, f"unexpected S3 actions: {set(access) - allowed}"
    for action, resources in access.items():
        for resource in resources:
            assert resource.startswith((MODEL_BUCKET_ARN, DATA_BUCKET_ARN)), (action, resource)
    # Listing is narrowed by prefix too.
    for statement in stack.role_statements("BatchScoringFunction"):
        if "s3:ListBucket" in as_list(statement["Action"]):
            assert "s3:prefix" in statement["Condition"]["StringLike"], statement.get("Sid")


# -- functions --------------------------------------------------------------------------


@pytest.mark.parametrize("function_id", FUNCTIONS + STEP_FUNCTIONS)
def test_function_runs_python_3_13_with_the_serving_runtimes_layer(
    stack: Stack, function_id: str
) -> None:
    properties = stack.props(function_id)
    assert stack.resources[function_id]["Type"] == "AWS::Lambda::Function"
    assert properties["Runtime"] == "python3.13"
    layers = {
        re.sub(r"[0-9a-f]{10}$", "", k): k for k in stack.of_type("AWS::Lambda::LayerVersion")
    }
    assert sorted(layers) == [
        "ModelStoreLayer",
        "OnnxDependenciesLayer",
        "SklearnDependenciesLayer",
    ]
    runtime = stack.parameters.get("ServingRuntime", "onnx")
    dependencies = {"onnx": "OnnxDependenciesLayer", "sklearn": "SklearnDependenciesLayer"}
    # An Fn::If in Layers, not a resource Condition: both layers exist, one is attached.
    chosen = [stack.choose(layer) for layer in properties["Layers"]]
    assert chosen == [{"Ref": layers[dependencies[runtime]]}, {"Ref": layers["ModelStoreLayer"]}]
    assert properties["Environment"]["Variables"]["SERVING_RUNTIME"] == {"Ref": "ServingRuntime"}


@pytest.mark.parametrize("function_id", FUNCTIONS + STEP_FUNCTIONS)
def test_every_variable_in_env_json_is_declared(stack: Stack, function_id: str) -> None:
    local = load_event("env.json")
    known = set(FUNCTIONS + STEP_FUNCTIONS)
    assert set(local) <= known, f"env.json names unknown functions: {set(local)}"
    # The transformed function carries Globals merged with its own variables.
    declared = set(stack.props(function_id)["Environment"]["Variables"])
    undeclared = set(local.get(function_id, {})) - declared
    assert not undeclared, f"sam local invoke would drop {sorted(undeclared)}"


# -- outputs and alarms -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "resource_type"),
    [
        ("ApiKeyId", "AWS::ApiGateway::ApiKey"),
        ("UsagePlanId", "AWS::ApiGateway::UsagePlan"),
        ("ModelBucketName", "AWS::S3::Bucket"),
        ("DataBucketName", "AWS::S3::Bucket"),
        ("DeadLetterQueueUrl", "AWS::SQS::Queue"),  # a queue's Ref is its URL
    ],
)
def test_output_refers_to_a_generated_resource(
    stack: Stack, output: str, resource_type: str
) -> None:
    value = stack.template["Outputs"][output]["Value"]
    assert set(value) == {"Ref"}, f"{output} is {value!r}"
    assert stack.resources[value["Ref"]]["Type"] == resource_type


def test_api_url_output_names_the_api_and_stage(stack: Stack) -> None:
    api_id, _ = stack.only("AWS::ApiGateway::RestApi")
    url = stack.render(stack.template["Outputs"]["ApiUrl"]["Value"])
    stage = stack.parameters["StageName"]
    assert url == f"https://<{api_id}>.execute-api.us-east-1.amazonaws.com/{stage}"


def alarm_cases(stack: Stack) -> list[tuple[str, str, dict[str, str]]]:
    _, api = stack.only("AWS::ApiGateway::RestApi")
    queue_id, _ = stack.only("AWS::SQS::Queue")
    api_dimensions = {
        "ApiName": stack.render(api["Properties"]["Name"]),
        "Stage": str(stack.parameters["StageName"]),
    }
    cases = [("AWS/ApiGateway", "5XXError", api_dimensions)]
    for function_id in FUNCTIONS:
        function_name = stack.render({"Ref": function_id})
        for metric in ("Errors", "Throttles"):
            cases.append(("AWS/Lambda", metric, {"FunctionName": function_name}))
    queue_name = stack.render({"Fn::GetAtt": [queue_id, "QueueName"]})
    cases.append(("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": queue_name}))
    return cases


def test_alarms_watch_api_errors_function_errors_and_throttles_and_dlq_depth(
    stack: Stack,
) -> None:
    alarms = [
        (
            a["Properties"]["Namespace"],
            a["Properties"]["MetricName"],
            {d["Name"]: stack.render(d["Value"]) for d in a["Properties"].get("Dimensions", [])},
        )
        for a in stack.of_type("AWS::CloudWatch::Alarm").values()
        if "Namespace" in a["Properties"]
    ]
    missing = [case for case in alarm_cases(stack) if case not in alarms]
    assert not missing, f"no alarm for {missing}"


def test_throttling_is_per_key_not_shared_by_the_stage(stack: Stack) -> None:
    """A stage-wide limit would cap all keys together at one key's rate."""
    _, stage = stack.only("AWS::ApiGateway::Stage")
    for setting in stage["Properties"].get("MethodSettings", []):
        assert "ThrottlingRateLimit" not in setting
        assert "ThrottlingBurstLimit" not in setting
    _, plan = stack.only("AWS::ApiGateway::UsagePlan")
    assert plan["Properties"]["Throttle"]["RateLimit"] == stack.parameters["ThrottleRateLimit"]


@pytest.mark.parametrize(
    ("function_id", "parameter"),
    [
        ("PredictApiFunction", "ApiReservedConcurrency"),
        ("BatchScoringFunction", "BatchReservedConcurrency"),
    ],
)
def test_reserved_concurrency_is_unset_unless_a_parameter_asks(
    stack: Stack, function_id: str, parameter: str
) -> None:
    """Empty by default: accounts with low limits reject any reservation, and 0 would
    disable the function."""
    reserved = stack.choose(stack.props(function_id).get("ReservedConcurrentExecutions", NO_VALUE))
    if stack.parameters[parameter] == "":
        assert reserved == NO_VALUE
    else:
        assert stack.render(reserved) == stack.parameters[parameter]


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_functions_verify_model_signatures_with_the_named_key_only(
    stack: Stack, function_id: str
) -> None:
    key = stack.parameters["ModelSigningKeyArn"]
    variables = stack.props(function_id)["Environment"]["Variables"]
    assert stack.render(variables["MODEL_SIGNING_KEY_ARN"]) == key
    kms = [
        s
        for s in stack.role_statements(function_id)
        if any(a.startswith("kms:") for a in as_list(s["Action"]))
    ]
    if not key:
        assert kms == []
        return
    [statement] = kms
    assert statement["Effect"] == "Allow"
    assert as_list(statement["Action"]) == ["kms:Verify"]
    assert [stack.render(r) for r in as_list(statement["Resource"])] == [key]


def test_only_the_publisher_role_may_write_under_models_when_named(stack: Stack) -> None:
    [policy] = [
        p["Properties"]["PolicyDocument"]
        for p in stack.of_type("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": "ModelBucket"}
    ]
    guards = [
        s
        for s in stack.statements(policy["Statement"])
        if s["Effect"] == "Deny" and "s3:PutObject" in as_list(s["Action"])
    ]
    role = stack.parameters["ModelPublisherRoleArn"]
    if not role:
        assert guards == []
        return
    [guard] = guards
    assert guard["Principal"] == "*"
    assert {"s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"} <= set(guard["Action"])
    prefix = stack.parameters["ModelPrefix"]
    assert [stack.render(r) for r in as_list(guard["Resource"])] == [
        f"{MODEL_BUCKET_ARN}/{prefix}models/*"
    ]
    assert stack.render(guard["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]) == role


# -- dashboard --------------------------------------------------------------------------

# SEARCH('{Namespace,dim1,dim2} MetricName="X" dim1="v"', 'Sum', 300)
SEARCH = re.compile(r"^SEARCH\('\{([^}]*)\} (.*)', '(\w+)', (\d+)\)$")
SEARCH_TERM = re.compile(r'(\w+)="([^"]*)"')
OBSERVABILITY = {
    "PredictApiFunction": api_observability,
    "BatchScoringFunction": batch_observability,
}


@dataclass(frozen=True)
class Drawn:
    """A metric a widget draws: a row names every dimension's value; a SEARCH expression
    names the exact dimension set (its schema) and filters on some of their values."""

    namespace: str
    metric: str
    dimensions: frozenset[str]
    values: tuple[tuple[str, str], ...]
    stat: str
    search: bool


def dashboard(stack: Stack) -> tuple[str, list[dict[str, Any]]]:
    """The dashboard's name and its widgets: the body must render to JSON."""
    logical_id, resource = stack.only("AWS::CloudWatch::Dashboard")
    body = json.loads(stack.render(resource["Properties"]["DashboardBody"]))
    widgets: list[dict[str, Any]] = body["widgets"]
    return stack.render({"Ref": logical_id}), widgets


def drawn(widget: dict[str, Any]) -> list[Drawn]:
    properties = widget["properties"]
    found = []
    for row in properties["metrics"]:
        options = row[-1] if isinstance(row[-1], dict) else {}
        if "expression" in options:
            match = SEARCH.match(options["expression"])
            assert match, options["expression"]
            schema, terms, stat, _ = match.groups()
            namespace, *names = schema.split(",")
            filters = dict(SEARCH_TERM.findall(terms))
            metric = filters.pop("MetricName")
            assert set(filters) <= set(names), options["expression"]
            values = tuple(sorted(filters.items()))
            found.append(Drawn(namespace, metric, frozenset(names), values, stat, search=True))
        else:
            namespace, metric, *pairs = [cell for cell in row if isinstance(cell, str)]
            dimensions = dict(zip(pairs[::2], pairs[1::2], strict=True))
            stat = options.get("stat", properties.get("stat"))
            values = tuple(sorted(dimensions.items()))
            found.append(Drawn(namespace, metric, frozenset(dimensions), values, stat, False))
    return found


def widget_drawing(stack: Stack, metric: str) -> tuple[dict[str, Any], list[Drawn]]:
    """The one widget that draws METRIC, and what it draws."""
    _, widgets = dashboard(stack)
    found = [(w, drawn(w)) for w in widgets if any(d.metric == metric for d in drawn(w))]
    assert len(found) == 1, f"{len(found)} widgets draw {metric}"
    return found[0]


def api_dimensions(stack: Stack) -> tuple[tuple[str, str], ...]:
    """ApiName and Stage, as the template's alarms name them."""
    _, api = stack.only("AWS::ApiGateway::RestApi")
    return (
        ("ApiName", stack.render(api["Properties"]["Name"])),
        ("Stage", stack.parameters["StageName"]),
    )


def test_the_dashboard_is_named_for_the_stack_and_its_url_is_an_output(stack: Stack) -> None:
    name, widgets = dashboard(stack)

    # Dashboard names are per account, not per region: the region keeps two stacks apart.
    assert name == "sklearn-serverless-us-east-1"
    url = stack.render(stack.template["Outputs"]["DashboardUrl"]["Value"])
    assert (
        url
        == f"https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards:name={name}"
    )
    assert len(widgets) == 7
    cells: set[tuple[int, int]] = set()
    for widget in widgets:
        assert widget["type"] == "metric"
        assert widget["properties"]["region"] == "us-east-1"
        assert widget["properties"]["title"]
        assert widget["x"] + widget["width"] <= 24
        area = {
            (x, y)
            for x in range(widget["x"], widget["x"] + widget["width"])
            for y in range(widget["y"], widget["y"] + widget["height"])
        }
        assert not cells & area, f"{widget['properties']['title']} overlaps another widget"
        cells |= area


def test_the_dashboard_shows_api_latency_p50_and_p99(stack: Stack) -> None:
    _, metrics = widget_drawing(stack, "Latency")

    assert {(d.namespace, d.metric, d.values, d.stat) for d in metrics} == {
        ("AWS/ApiGateway", "Latency", api_dimensions(stack), "p50"),
        ("AWS/ApiGateway", "Latency", api_dimensions(stack), "p99"),
    }


def test_the_dashboard_shows_api_4xx_and_5xx(stack: Stack) -> None:
    _, metrics = widget_drawing(stack, "5XXError")

    assert {(d.namespace, d.metric, d.values, d.stat) for d in metrics} == {
        ("AWS/ApiGateway", "4XXError", api_dimensions(stack), "Sum"),
        ("AWS/ApiGateway", "5XXError", api_dimensions(stack), "Sum"),
    }


def test_the_throttles_widget_counts_both_functions_and_says_where_429s_are(
    stack: Stack,
) -> None:
    widget, metrics = widget_drawing(stack, "Throttles")

    functions = [(("FunctionName", stack.render({"Ref": f})),) for f in FUNCTIONS]
    assert {(d.namespace, d.metric, d.values, d.stat) for d in metrics} == {
        ("AWS/Lambda", "Throttles", functions[0], "Sum"),
        ("AWS/Lambda", "Throttles", functions[1], "Sum"),
        ("AWS/ApiGateway", "4XXError", api_dimensions(stack), "Sum"),
    }
    # API Gateway has no metric of its own for 429s: the title says where they are.
    title = widget["properties"]["title"]
    assert "429" in title
    assert "4XXError" in title


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_the_functions_read_the_service_and_namespace_their_code_defaults_to(
    stack: Stack, function_id: str
) -> None:
    variables = stack.variables(function_id)
    module = OBSERVABILITY[function_id]

    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == module.NAMESPACE
    assert variables["POWERTOOLS_SERVICE_NAME"] == module.SERVICE


def _emitted_by_the_functions(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> list[dict[str, Any]]:
    """The EMF documents of a cold API invocation with a model load and a batch, and of a
    batch invocation scoring a file with a drift signal, written by the functions' own
    code with the template's namespace and service names."""
    api = stack.variables("PredictApiFunction")
    batch = stack.variables("BatchScoringFunction")
    capsys.readouterr()

    api_metrics = api_observability.metrics
    api_metrics.clear_metrics()
    monkeypatch.setattr(api_metrics, "namespace", api["POWERTOOLS_METRICS_NAMESPACE"])
    monkeypatch.setattr(api_metrics, "service", api["POWERTOOLS_SERVICE_NAME"])
    api_observability.record_model_load("7", 0.25)
    api_observability.record_prediction("7", 3, batch=True)
    api_metrics.flush_metrics()
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", stack.render({"Ref": "PredictApiFunction"}))
    record_cold_start(api_metrics.service, api_metrics.namespace)

    batch_metrics = Metrics(
        service=batch["POWERTOOLS_SERVICE_NAME"], namespace=batch["POWERTOOLS_METRICS_NAMESPACE"]
    )
    report = BatchReport(
        status="succeeded",
        source=SourceInfo(location="s3://data/incoming/a.csv"),
        model=ModelRef(name="iris", version="7"),
        rows_in=120,
        rows_scored=119,
        rows_failed=1,
        drift=Drift(
            threshold=0.2,
            rows=119,
            features={
                "sepal_length": FeatureDrift(psi=0.05, flagged=False),
                "petal_width": FeatureDrift(psi=0.4, flagged=True),
            },
        ),
        started_at=datetime.now(UTC),
    )
    batch_observability.record_report(batch_metrics, report)
    batch_metrics.flush_metrics()
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", stack.render({"Ref": "BatchScoringFunction"}))
    record_cold_start(batch_metrics.service, batch_metrics.namespace)

    lines = capsys.readouterr().out.splitlines()
    return [json.loads(line) for line in lines if line.startswith("{") and '"_aws"' in line]


def test_the_dashboard_draws_the_metrics_the_functions_emit(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Namespace, metric names, dimension sets and service names as the code writes them:
    a metric drawn under another name or dimension set would be an empty graph."""
    documents = _emitted_by_the_functions(stack, monkeypatch, capsys)
    emitted = [
        (directive["Namespace"], metric["Name"], dimensions, document)
        for document in documents
        for directive in document["_aws"]["CloudWatchMetrics"]
        for dimensions in directive["Dimensions"]
        for metric in directive["Metrics"]
    ]
    namespace = stack.variables("PredictApiFunction")["POWERTOOLS_METRICS_NAMESPACE"]
    _, widgets = dashboard(stack)
    custom = [d for w in widgets for d in drawn(w) if not d.namespace.startswith("AWS/")]

    for metric in custom:
        assert metric.namespace == namespace, metric
        assert any(
            (n, name) == (metric.namespace, metric.metric)
            and frozenset(dimensions) == metric.dimensions
            and all(document[k] == v for k, v in metric.values)
            for n, name, dimensions, document in emitted
        ), f"the functions emit no {metric}"
    services = {f: stack.variables(f)["POWERTOOLS_SERVICE_NAME"] for f in FUNCTIONS}
    api, batch = services["PredictApiFunction"], services["BatchScoringFunction"]
    shown = {(d.metric, dict(d.values)["service"], d.search) for d in custom}
    assert shown == {
        (COLD_START, api, False),
        (COLD_START, batch, False),
        (api_observability.PREDICTIONS, api, True),  # by model_version: the one in service
        (batch_observability.ROWS_SCORED, batch, True),
        (batch_observability.ROWS_FAILED, batch, True),
        (batch_observability.PSI, batch, True),  # by feature
    }
    by_metric = {d.metric: d for d in custom if d.search}
    assert api_observability.MODEL_VERSION in by_metric[api_observability.PREDICTIONS].dimensions
    assert (
        batch_observability.MODEL_VERSION in by_metric[batch_observability.ROWS_SCORED].dimensions
    )
    assert batch_observability.FEATURE in by_metric[batch_observability.PSI].dimensions
    cold = {dict(d.values)["function_name"] for d in custom if d.metric == "ColdStart"}
    assert cold == {stack.render({"Ref": f}) for f in FUNCTIONS}


def test_the_drift_widget_draws_the_threshold_the_batch_function_flags_at(stack: Stack) -> None:
    widget, _ = widget_drawing(stack, batch_observability.PSI)

    [line] = widget["properties"]["annotations"]["horizontal"]
    threshold = stack.variables("BatchScoringFunction")["DRIFT_THRESHOLD"]
    assert threshold == str(stack.parameters["DriftThreshold"])
    assert line["value"] == float(threshold)
