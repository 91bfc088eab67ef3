"""What the local stack reads from the SAM template: functions, routes, plan, triggers, names.

Template works on any template path, so most checks read the repo's source template.yaml
(CodeUri relative to the repo root). What depends on the built paths, and the events that
must agree with `make local`, read the variant `sam build` wrote for this machine's Python,
as `make local` does (built once per module; sam's cache makes that quick). Path
parameters and escapes the repo's template does not use are checked on small synthetic
templates.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
from samcli.yamlhelper import yaml_parse

from devstack import runtime
from devstack.stack import (
    LOCAL_CREDENTIALS,
    LOCAL_ENDPOINTS,
    StackConfig,
    function_environment,
    load_env_file,
)
from devstack.template import (
    LOCAL_ACCOUNT,
    MockAnswer,
    Route,
    S3Trigger,
    Template,
    TemplateError,
    read_document,
)
from tests.support.events import EVENTS_DIR, load_event

STACK = "my-stack"
REGION = "eu-west-1"
FUNCTIONS = (
    "PredictApiFunction",
    "BatchScoringFunction",
    "ShardPlanFunction",
    "ShardScoreFunction",
    "ShardMergeFunction",
)


@pytest.fixture(scope="module")
def built(local_build: Path) -> Path:
    """The template `sam build` wrote for this Python: what `make local` runs."""
    path = local_build / "template.yaml"
    assert path.exists()
    return path


@pytest.fixture(scope="module")
def source() -> Path:
    return runtime.ROOT / "template.yaml"


@pytest.fixture(scope="module")
def document(source: Path) -> dict[str, Any]:
    parsed: dict[str, Any] = yaml_parse(source.read_text())
    return parsed


def template(path: Path, **overrides: str) -> Template:
    return Template(path, stack_name=STACK, region=REGION, parameter_overrides=overrides)


def synthetic(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def default(document: dict[str, Any], parameter: str) -> str:
    return str(document["Parameters"][parameter]["Default"])


# -- functions ------------------------------------------------------------------------------
def test_globals_environment_is_merged_with_each_functions_own(
    source: Path, document: dict[str, Any]
) -> None:
    functions = template(source).functions()
    assert set(functions) == set(FUNCTIONS)
    global_names = set(document["Globals"]["Function"]["Environment"]["Variables"])
    for logical_id, function in functions.items():
        own = document["Resources"][logical_id]["Properties"]["Environment"]["Variables"]
        declared = set(function.environment) - {"AWS_LAMBDA_LOG_FORMAT", "AWS_LAMBDA_LOG_LEVEL"}
        assert declared == global_names | set(own), logical_id
        assert function.environment["POWERTOOLS_SERVICE_NAME"] == own["POWERTOOLS_SERVICE_NAME"]
        namespace = document["Globals"]["Function"]["Environment"]["Variables"][
            "POWERTOOLS_METRICS_NAMESPACE"
        ]
        assert function.environment["POWERTOOLS_METRICS_NAMESPACE"] == namespace
    # On the source template, CodeUri is relative to the template's folder.
    for logical_id, function in functions.items():
        code_uri = document["Resources"][logical_id]["Properties"]["CodeUri"]
        assert function.code_dir == source.parent / code_uri
    # Each function keeps its own variables to itself.
    assert "MAX_BATCH_RECORDS" in functions["PredictApiFunction"].environment
    assert "MAX_BATCH_RECORDS" not in functions["BatchScoringFunction"].environment
    assert "CHUNK_ROWS" in functions["BatchScoringFunction"].environment
    assert "CHUNK_ROWS" not in functions["PredictApiFunction"].environment


def test_a_functions_own_values_win_over_globals(tmp_path: Path) -> None:
    path = synthetic(
        tmp_path,
        """
        Globals:
          Function:
            Timeout: 10
            MemorySize: 256
            Layers: [!Ref Shared]
            Environment:
              Variables: {SHARED: from-globals, LEVEL: global}
        Resources:
          Shared:
            Type: AWS::Serverless::LayerVersion
            Properties: {ContentUri: shared/}
          Own:
            Type: AWS::Serverless::LayerVersion
            Properties: {ContentUri: own/}
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Timeout: 20
              Layers: [!Ref Own]
              Environment:
                Variables: {LEVEL: own, EXTRA: "1"}
        """,
    )
    function = template(path).functions()["Fn"]
    assert function.environment == {"SHARED": "from-globals", "LEVEL": "own", "EXTRA": "1"}
    assert function.timeout_s == 20
    assert function.memory_mb == 256
    assert function.layer_dirs == (tmp_path / "shared/python", tmp_path / "own/python")


@pytest.mark.slow  # reads what `sam build` wrote
@pytest.mark.parametrize(
    ("runtime_name", "dependencies"),
    [
        (None, "OnnxDependenciesLayer"),  # the template's default
        ("onnx", "OnnxDependenciesLayer"),
        ("sklearn", "SklearnDependenciesLayer"),
    ],
)
def test_functions_run_from_the_built_code_and_layers(
    built: Path, document: dict[str, Any], runtime_name: str | None, dependencies: str
) -> None:
    overrides = {"ServingRuntime": runtime_name} if runtime_name else {}
    functions = template(built, **overrides).functions()
    # The Fn::If in the Layers of Globals picks the dependency layer of the serving runtime.
    global_layers = [dependencies, "ModelStoreLayer"]
    for logical_id, function in functions.items():
        assert function.environment["SERVING_RUNTIME"] == (runtime_name or "onnx")
        assert function.code_dir == built.parent / logical_id
        module = function.handler.rsplit(".", 1)[0].replace(".", "/")
        assert (function.code_dir / f"{module}.py").is_file(), function.handler
        # Globals' layers come first, in their order, as /opt/python.
        assert function.layer_dirs == tuple(built.parent / lid / "python" for lid in global_layers)
        assert all(layer.is_dir() for layer in function.layer_dirs)
    # A function's own Timeout wins over Globals'; without one, Globals' applies.
    assert functions["PredictApiFunction"].timeout_s == document["Globals"]["Function"]["Timeout"]
    assert functions["BatchScoringFunction"].timeout_s == int(
        default(document, "BatchTimeoutSeconds")
    )


def test_parameter_overrides_change_the_resolved_environment(
    source: Path, document: dict[str, Any]
) -> None:
    defaults = template(source).functions()
    overridden = template(
        source, ModelRefreshSeconds="5", ModelPrefix="registry/", LogLevel="DEBUG"
    ).functions()
    for logical_id in FUNCTIONS:
        before = defaults[logical_id].environment
        after = overridden[logical_id].environment
        assert before["MODEL_REFRESH_SECONDS"] == default(document, "ModelRefreshSeconds")
        assert after["MODEL_REFRESH_SECONDS"] == "5"
        assert after["MODEL_PREFIX"] == "registry/"
        assert after["POWERTOOLS_LOG_LEVEL"] == "DEBUG"
        # Untouched parameters keep their defaults.
        assert after["MODEL_NAME"] == before["MODEL_NAME"] == default(document, "ModelName")


def test_retry_attempts_follow_the_event_invoke_config(source: Path) -> None:
    assert template(source).functions()["BatchScoringFunction"].retry_attempts == 2
    assert (
        template(source, BatchMaxRetries="0").functions()["BatchScoringFunction"].retry_attempts
        == 0
    )
    # Without an EventInvokeConfig, Lambda's default of two retries.
    assert (
        template(source, BatchMaxRetries="0").functions()["PredictApiFunction"].retry_attempts == 2
    )


def test_logging_config_sets_the_lambda_log_format_and_level(
    source: Path, document: dict[str, Any]
) -> None:
    log_format = document["Globals"]["Function"]["LoggingConfig"]["LogFormat"]
    for level in ("WARN", "ERROR"):
        for function in template(source, LogLevel=level).functions().values():
            assert function.environment["AWS_LAMBDA_LOG_FORMAT"] == log_format
            assert function.environment["AWS_LAMBDA_LOG_LEVEL"] == level


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"NoSuchParameter": "1"}, "NoSuchParameter"),
        ({"LogLevel": "TRACE"}, "LogLevel"),  # not in AllowedValues
        ({"BatchMaxRetries": "3"}, "BatchMaxRetries"),  # not in AllowedValues (numbers)
        ({"StageName": "bad-stage"}, "StageName"),  # AllowedPattern ^[A-Za-z0-9_]+$
        ({"ModelPrefix": "registry"}, "ModelPrefix"),  # must end with /
    ],
)
def test_bad_parameter_overrides_are_a_template_error_naming_the_parameter(
    source: Path, overrides: dict[str, str], named: str
) -> None:
    with pytest.raises(TemplateError, match=named):
        template(source, **overrides)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"ThrottleRateLimit": "fast"}, "ThrottleRateLimit"),  # Type: Number
        ({"MaxBatchRecords": "0"}, "MaxBatchRecords"),  # MinValue: 1
        ({"ApiMemorySize": "20000"}, "ApiMemorySize"),  # MaxValue: 10240
    ],
)
def test_number_parameters_are_checked_as_cloudformation_checks_them(
    source: Path, overrides: dict[str, str], named: str
) -> None:
    with pytest.raises(TemplateError, match=named):
        template(source, **overrides)


# -- names ----------------------------------------------------------------------------------
def test_ref_to_a_bucket_gives_its_stable_local_name(source: Path) -> None:
    first, second = template(source), template(source)
    name = first.physical_id("ModelBucket")
    assert name == f"{STACK}-model-bucket"
    assert second.physical_id("ModelBucket") == name  # no random suffix
    assert Template(source, stack_name="other").physical_id("ModelBucket") == "other-model-bucket"
    for function in first.functions().values():
        assert function.environment["MODEL_BUCKET"] == name
    assert {b.logical_id: b.name for b in first.buckets()}["ModelBucket"] == name


def test_the_data_bucket_name_resolves_its_sub_with_stack_account_and_region(source: Path) -> None:
    local = template(source)
    expected = f"{STACK}-data-{LOCAL_ACCOUNT}-{REGION}"
    assert LOCAL_ACCOUNT == "123456789012"
    assert local.physical_id("DataBucket") == expected
    buckets = {b.logical_id: b for b in local.buckets()}
    assert buckets["DataBucket"].name == expected
    assert buckets["DataBucket"].versioned
    assert local.resolve({"Fn::GetAtt": ["DataBucket", "Arn"]}) == f"arn:aws:s3:::{expected}"


# -- the API --------------------------------------------------------------------------------
def test_routes_methods_and_api_key_requirements(source: Path, document: dict[str, Any]) -> None:
    (api,) = template(source).apis()
    declared = {
        (str(e["Properties"]["Method"]).upper(), e["Properties"]["Path"])
        for e in document["Resources"]["PredictApiFunction"]["Properties"]["Events"].values()
        if e["Type"] == "Api"
    }
    mocks = {
        (method.upper(), path)
        for path, methods in document["Resources"]["PredictApi"]["Properties"]["DefinitionBody"][
            "paths"
        ].items()
        for method in methods
    }
    assert mocks == {("GET", "/health")}
    assert {(r.method, r.path) for r in api.routes} == declared | mocks
    assert all(r.method.isupper() for r in api.routes)
    assert {r.function for r in api.routes if r.mock is None} == {"PredictApiFunction"}
    [health] = [r for r in api.routes if r.path == "/health"]
    assert health.function is None
    assert health.mock == MockAnswer(200, '{"status":"ok"}', "application/json")
    required = {r.path: r.api_key_required for r in api.routes}
    # /health (a MOCK) and the docs (the request contract, for browsers) are open...
    assert [required.pop(path) for path in ("/health", "/docs", "/openapi.json")] == [False] * 3
    assert required  # ...the other routes exist...
    assert all(required.values())  # ...and every one of them needs a key
    assert api.stage == default(document, "StageName")
    assert api.name == f"{STACK}-api"
    (renamed,) = template(source, StageName="v7").apis()
    assert renamed.stage == "v7"


def test_usage_plan_values_come_from_the_parameters(source: Path, document: dict[str, Any]) -> None:
    (api,) = template(source).apis()
    assert api.usage_plan is not None
    assert api.usage_plan.rate_limit == float(default(document, "ThrottleRateLimit"))
    assert api.usage_plan.burst_limit == int(default(document, "ThrottleBurstLimit"))
    assert api.usage_plan.quota_limit == int(default(document, "QuotaPerDay"))
    assert api.usage_plan.quota_period == "DAY"
    (changed,) = template(
        source, ThrottleRateLimit="7", ThrottleBurstLimit="13", QuotaPerDay="1234"
    ).apis()
    assert changed.usage_plan is not None
    assert (
        changed.usage_plan.rate_limit,
        changed.usage_plan.burst_limit,
        changed.usage_plan.quota_limit,
    ) == (7.0, 13, 1234)


def test_synthetic_api_key_defaults_overrides_methods_and_no_plan(tmp_path: Path) -> None:
    path = synthetic(
        tmp_path,
        """
        Resources:
          Api:
            Type: AWS::Serverless::Api
            Properties:
              StageName: dev
              BinaryMediaTypes: [image/png]
              Auth:
                ApiKeyRequired: true
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Events:
                Item:
                  Type: Api
                  Properties: {RestApiId: !Ref Api, Path: "/items/{id}", Method: get}
                Files:
                  Type: Api
                  Properties:
                    RestApiId: !Ref Api
                    Path: "/files/{proxy+}"
                    Method: any
                    Auth: {ApiKeyRequired: false}
        """,
    )
    local = template(path)
    (api,) = local.apis()
    routes = {r.path: r for r in api.routes}
    assert routes["/items/{id}"] == Route("GET", "/items/{id}", "Fn", api_key_required=True)
    assert routes["/files/{proxy+}"] == Route("ANY", "/files/{proxy+}", "Fn", False)
    assert api.usage_plan is None
    assert api.binary_media_types == ("image/png",)
    # CodeUri is relative to the template's folder.
    assert local.functions()["Fn"].code_dir == tmp_path / "src/"


# -- Route.pattern ----------------------------------------------------------------------------
def test_route_pattern_with_a_path_parameter() -> None:
    pattern = Route("GET", "/items/{id}", "Fn", True).pattern()
    found = pattern.match("/items/42")
    assert found is not None
    assert found.groupdict() == {"id": "42"}
    assert pattern.match("/items/42/more") is None  # {id} is one segment
    assert pattern.match("/items/") is None
    assert pattern.match("/items") is None
    assert pattern.match("/other/42") is None


def test_route_pattern_with_a_greedy_proxy_parameter() -> None:
    pattern = Route("ANY", "/files/{proxy+}", "Fn", True).pattern()
    found = pattern.match("/files/a/b/c.txt")
    assert found is not None
    assert found.groupdict() == {"proxy": "a/b/c.txt"}
    assert pattern.match("/files/") is None
    assert pattern.match("/files") is None


def test_route_pattern_matches_literal_paths_literally() -> None:
    pattern = Route("GET", "/openapi.json", "Fn", True).pattern()
    assert pattern.match("/openapi.json") is not None
    assert pattern.match("/openapiXjson") is None  # the dot is not a wildcard
    assert pattern.match("/openapi.json/x") is None


# -- S3 triggers --------------------------------------------------------------------------------
def test_the_s3_trigger_watches_incoming_on_the_data_bucket(source: Path) -> None:
    local = template(source)
    (trigger,) = local.s3_triggers()
    assert trigger.function == "BatchScoringFunction"
    assert trigger.bucket == local.physical_id("DataBucket")
    # The prefix alone: the function decides which names it scores (any case, .csv.gz).
    assert (trigger.prefix, trigger.suffix) == ("incoming/", "")
    assert trigger.events == ("s3:ObjectCreated:*",)


@pytest.mark.parametrize(
    ("event_name", "key", "expected"),
    [
        ("s3:ObjectCreated:Put", "incoming/a.csv", True),
        ("s3:ObjectCreated:CompleteMultipartUpload", "incoming/sub/b.csv", True),
        ("s3:ObjectCreated:Put", "incoming/a.txt", False),  # suffix
        ("s3:ObjectCreated:Put", "other/incoming/a.csv", False),  # prefix
        ("s3:ObjectCreated:Put", "a.csv", False),
        ("s3:ObjectRemoved:Delete", "incoming/a.csv", False),  # event type
    ],
)
def test_s3_trigger_matches(event_name: str, key: str, expected: bool) -> None:
    trigger = S3Trigger("Fn", "bucket", ("s3:ObjectCreated:*",), "incoming/", ".csv")
    assert trigger.matches(event_name, key) is expected


def test_s3_trigger_with_an_exact_event_name() -> None:
    trigger = S3Trigger("Fn", "bucket", ("s3:ObjectCreated:Put",))
    assert trigger.matches("s3:ObjectCreated:Put", "any/key")
    assert not trigger.matches("s3:ObjectCreated:Copy", "any/key")


# -- intrinsics and outputs ---------------------------------------------------------------------
def test_outputs_resolve_what_exists_locally_and_leave_out_the_rest(source: Path) -> None:
    local = template(source)
    outputs = local.outputs()
    assert outputs["ModelBucketName"] == local.physical_id("ModelBucket")
    assert outputs["DataBucketName"] == local.physical_id("DataBucket")
    assert outputs["PredictApiFunctionName"] == f"{STACK}-predict-api"
    assert outputs["BatchScoringFunctionName"] == f"{STACK}-batch-scoring"
    # The key and plan are made by SAM's transform, not declared: unresolvable until the
    # stack has created them.
    assert "ApiKeyId" not in outputs
    assert "UsagePlanId" not in outputs
    local.set_physical("PredictApi", "a1b2c3d4e5")
    local.set_physical("PredictApiApiKey", "key123")
    local.set_physical("PredictApiUsagePlan", "plan456")
    after = local.outputs()
    assert after["ApiKeyId"] == "key123"
    assert after["UsagePlanId"] == "plan456"
    assert after["ApiUrl"] == f"https://a1b2c3d4e5.execute-api.{REGION}.amazonaws.com/Prod"


def test_outputs_leave_out_a_queue_url(source: Path) -> None:
    assert "DeadLetterQueueUrl" not in template(source).outputs()


def test_sub_resolves_variables_pseudo_parameters_and_attributes(tmp_path: Path) -> None:
    path = synthetic(
        tmp_path,
        """
        Parameters:
          Env: {Type: String, Default: dev}
        Resources:
          Bucket: {Type: AWS::S3::Bucket}
        """,
    )
    local = template(path, Env="prod")
    assert local.resolve({"Fn::Sub": "${AWS::StackName}-${Env}-${AWS::Region}"}) == (
        f"{STACK}-prod-{REGION}"
    )
    assert local.resolve({"Fn::Sub": ["${X}/${Bucket.Arn}", {"X": {"Ref": "Env"}}]}) == (
        f"prod/arn:aws:s3:::{STACK}-bucket"
    )
    assert local.resolve({"Fn::Join": ["-", ["a", {"Ref": "Env"}]]}) == "a-prod"
    with pytest.raises(TemplateError, match="Missing"):
        local.resolve({"Ref": "Missing"})


def test_sub_escape_gives_a_literal(tmp_path: Path) -> None:
    path = synthetic(tmp_path, "Resources: {}\n")
    assert template(path).resolve({"Fn::Sub": "a-${!Literal}"}) == "a-${Literal}"


# -- events/ and the local stack --------------------------------------------------------------
@pytest.mark.slow  # reads what `sam build` wrote
def test_env_json_names_the_model_bucket_the_local_stack_creates(built: Path) -> None:
    local = Template(built, stack_name=StackConfig().stack_name)
    env = json.loads((EVENTS_DIR / "env.json").read_text())
    model_bucket = {b.logical_id: b.name for b in local.buckets()}["ModelBucket"]
    functions = local.functions()
    assert set(FUNCTIONS) <= set(env)
    for logical_id in FUNCTIONS:
        if logical_id != "ShardMergeFunction":  # the merge loads no model: none given
            assert env[logical_id]["MODEL_BUCKET"] == model_bucket, logical_id
        # sam local invoke --env-vars ignores what the template does not declare.
        undeclared = set(env[logical_id]) - set(functions[logical_id].environment)
        assert not undeclared, f"{logical_id}: {undeclared}"


@pytest.mark.slow  # reads what `sam build` wrote
def test_s3_put_event_names_the_data_bucket_the_local_stack_creates(built: Path) -> None:
    local = Template(built, stack_name=StackConfig().stack_name)
    data_bucket = {b.logical_id: b.name for b in local.buckets()}["DataBucket"]
    (record,) = load_event("s3_put.json")["Records"]
    assert record["s3"]["bucket"]["name"] == data_bucket
    assert record["s3"]["bucket"]["arn"] == f"arn:aws:s3:::{data_bucket}"
    assert record["awsRegion"] == StackConfig().region
    (trigger,) = local.s3_triggers()
    key = unquote_plus(record["s3"]["object"]["key"])
    assert trigger.matches(f"s3:{record['eventName']}", key)


def test_function_environment_overrides_only_declared_variables(source: Path) -> None:
    functions = template(source).functions()
    function = functions["PredictApiFunction"]
    env_file: dict[str, dict[str, Any]] = {
        "Parameters": {"MODEL_ALIAS": "staging"},
        "PredictApiFunction": {
            "MODEL_NAME": "penguins",
            "MODEL_REFRESH_SECONDS": 7,  # JSON numbers become strings
            "NOT_DECLARED": "dropped",
            "AWS_ENDPOINT_URL_S3": "http://host.docker.internal:4567",
        },
        "BatchScoringFunction": {"MODEL_PREFIX": "batch-only/"},
    }
    endpoint = "http://127.0.0.1:45999"
    environment = function_environment(
        function,
        env_file=env_file,
        overrides={"POWERTOOLS_LOG_LEVEL": "DEBUG"},
        s3_endpoint=endpoint,
        region="ap-south-1",
    )
    assert environment["MODEL_ALIAS"] == "staging"
    assert environment["MODEL_NAME"] == "penguins"
    assert environment["MODEL_REFRESH_SECONDS"] == "7"
    assert "NOT_DECLARED" not in environment
    assert environment["MODEL_PREFIX"] == function.environment["MODEL_PREFIX"]  # other scope
    assert environment["POWERTOOLS_LOG_LEVEL"] == "DEBUG"
    assert environment["AWS_ENDPOINT_URL_S3"] == endpoint
    assert environment["MODEL_BUCKET"] == function.environment["MODEL_BUCKET"]
    for name, value in LOCAL_CREDENTIALS.items():
        assert environment[name] == value
    assert environment["AWS_REGION"] == environment["AWS_DEFAULT_REGION"] == "ap-south-1"
    # The function definition itself is left as the template says.
    assert function.environment["MODEL_NAME"] != "penguins"


def test_function_environment_from_the_repos_env_json(source: Path) -> None:
    env_file = load_env_file(EVENTS_DIR / "env.json")
    endpoint = "http://127.0.0.1:45998"
    for logical_id, function in template(source).functions().items():
        environment = function_environment(
            function, env_file=env_file, overrides={}, s3_endpoint=endpoint, region=REGION
        )
        for name, value in env_file[logical_id].items():
            expected = endpoint if name in LOCAL_ENDPOINTS else str(value)
            assert environment[name] == expected, (logical_id, name)
        # Without an endpoint, env.json's own value stays.
        unchanged = function_environment(
            function, env_file=env_file, overrides={}, s3_endpoint=None, region=REGION
        )
        assert unchanged["AWS_ENDPOINT_URL_S3"] == env_file[logical_id]["AWS_ENDPOINT_URL_S3"]


# -- conditions ------------------------------------------------------------------------------


CONDITIONAL = """
    Parameters:
      Mode:
        Type: String
        Default: fast
        AllowedValues: [fast, exact]
      Topic:
        Type: String
        Default: ""
    Conditions:
      IsFast: !Equals [!Ref Mode, fast]
      IsExact: !Not [!Condition IsFast]
      HasTopic: !Not [!Equals [!Ref Topic, ""]]
      FastWithTopic: !And [!Condition IsFast, !Condition HasTopic]
      EitherWay: !Or [!Condition IsFast, !Condition IsExact]
    Resources:
      FastLayer:
        Type: AWS::Serverless::LayerVersion
        Properties: {ContentUri: fast/}
      ExactLayer:
        Type: AWS::Serverless::LayerVersion
        Properties: {ContentUri: exact/}
      Fn:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: fn/
          Handler: app.handler
          Runtime: python3.13
          Layers:
            - !If [IsFast, !Ref FastLayer, !Ref ExactLayer]
          MemorySize: !If [FastWithTopic, 512, 256]
          Environment:
            Variables:
              MODE: !If [IsExact, exact-mode, !Ref Mode]
              TOPIC: !If [HasTopic, !Ref Topic, !Ref "AWS::NoValue"]
              ALWAYS: !If [EitherWay, "yes", "no"]
      OnlyWhenExact:
        Type: AWS::Serverless::Function
        Condition: IsExact
        Properties: {CodeUri: other/, Handler: app.handler, Runtime: python3.13}
"""


def test_fn_if_picks_the_branch_of_its_condition(tmp_path: Path) -> None:
    path = synthetic(tmp_path, CONDITIONAL)

    fast = template(path).functions()
    assert set(fast) == {"Fn"}  # OnlyWhenExact's Condition is false
    assert fast["Fn"].layer_dirs == (tmp_path / "fast/python",)
    assert fast["Fn"].memory_mb == 256
    # AWS::NoValue removes the variable, as CloudFormation does.
    assert fast["Fn"].environment == {"MODE": "fast", "ALWAYS": "yes"}

    exact = template(path, Mode="exact", Topic="alarms").functions()
    assert set(exact) == {"Fn", "OnlyWhenExact"}
    assert exact["Fn"].layer_dirs == (tmp_path / "exact/python",)
    assert exact["Fn"].environment == {"MODE": "exact-mode", "TOPIC": "alarms", "ALWAYS": "yes"}

    with_topic = template(path, Topic="alarms").functions()
    assert with_topic["Fn"].memory_mb == 512


def test_an_undeclared_condition_is_a_clear_error(tmp_path: Path) -> None:
    path = synthetic(
        tmp_path,
        """
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: fn/
              Handler: app.handler
              MemorySize: !If [Nowhere, 512, 256]
        """,
    )
    with pytest.raises(TemplateError, match="condition Nowhere is not declared"):
        template(path).functions()


def test_each_read_of_a_template_is_the_callers_own_and_follows_the_file(tmp_path: Path) -> None:
    path = synthetic(tmp_path, "Resources:\n  Queue:\n    Type: AWS::SQS::Queue\n")
    first = read_document(path)
    first["Resources"]["Queue"]["Type"] = "changed by the caller"

    assert read_document(path)["Resources"]["Queue"]["Type"] == "AWS::SQS::Queue"
    path.write_text("Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n")
    assert list(read_document(path)["Resources"]) == ["Topic"]
