"""What the local stack reads from the SAM template that `sam build` wrote.

Only the parts that decide how the system behaves locally: each function's code, layers,
handler, limits and environment (Globals merged in, as SAM does), the API's routes, stage
and usage plan, and the S3 notifications. Intrinsics are resolved the way CloudFormation
would for one stack in one account; resources that CloudFormation would name get a
stable local name instead of a random suffix.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from samcli.yamlhelper import yaml_parse

LOCAL_ACCOUNT = "123456789012"  # moto's default account
_NO_VALUE = object()  # what {"Ref": "AWS::NoValue"} selects: the key or item disappears
_N = TypeVar("_N", int, float)
_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


class TemplateError(Exception):
    """The template asks for something the local stack cannot resolve or run."""


@dataclass(frozen=True)
class MockAnswer:
    """What API Gateway answers itself for a MOCK integration (its template, served as
    literal text: the local gateway runs no VTL)."""

    status: int
    body: str
    content_type: str = "application/json"


@dataclass(frozen=True)
class Route:
    method: str  # upper case
    path: str  # as declared, e.g. /predict or /items/{id}
    function: str | None  # logical id; None for a MOCK integration
    api_key_required: bool
    mock: MockAnswer | None = None

    def pattern(self) -> re.Pattern[str]:
        parts = []
        for segment in self.path.strip("/").split("/"):
            if segment.startswith("{") and segment.endswith("+}"):
                parts.append(f"(?P<{segment[1:-2]}>.+)")
            elif segment.startswith("{") and segment.endswith("}"):
                parts.append(f"(?P<{segment[1:-1]}>[^/]+)")
            else:
                parts.append(re.escape(segment))
        return re.compile("^/" + "/".join(parts) + "$")


@dataclass(frozen=True)
class UsagePlanSpec:
    rate_limit: float | None
    burst_limit: int | None
    quota_limit: int | None
    quota_period: str | None
    description: str = ""


@dataclass(frozen=True)
class ApiSpec:
    logical_id: str
    name: str
    stage: str
    routes: tuple[Route, ...]
    usage_plan: UsagePlanSpec | None
    binary_media_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class S3Trigger:
    function: str
    bucket: str
    events: tuple[str, ...]  # e.g. s3:ObjectCreated:*
    prefix: str = ""
    suffix: str = ""

    def matches(self, event_name: str, key: str) -> bool:
        return (
            key.startswith(self.prefix)
            and key.endswith(self.suffix)
            and any(_event_matches(pattern, event_name) for pattern in self.events)
        )


def _event_matches(pattern: str, event_name: str) -> bool:
    # s3:ObjectCreated:* matches s3:ObjectCreated:Put, as in S3 notification configs.
    if pattern.endswith(":*"):
        return event_name.startswith(pattern[:-1])
    return pattern == event_name


@dataclass(frozen=True)
class FunctionDef:
    logical_id: str
    name: str  # the physical FunctionName
    handler: str
    runtime: str
    code_dir: Path
    layer_dirs: tuple[Path, ...]
    memory_mb: int
    timeout_s: int
    environment: Mapping[str, str] = field(default_factory=dict)
    retry_attempts: int = 2  # asynchronous invocations (S3), as EventInvokeConfig says


@dataclass(frozen=True)
class BucketDef:
    logical_id: str
    name: str
    versioned: bool


class Template:
    """A built SAM template, its parameters resolved for one local stack."""

    def __init__(
        self,
        path: Path,
        *,
        stack_name: str,
        region: str = "us-east-1",
        account: str = LOCAL_ACCOUNT,
        parameter_overrides: Mapping[str, str] | None = None,
    ) -> None:
        self.path = path
        self.root = path.parent
        self.document: dict[str, Any] = yaml_parse(path.read_text())
        self.stack_name = stack_name
        self.region = region
        self.account = account
        self.resources: dict[str, Any] = self.document.get("Resources", {})
        self.parameters = self._parameters(parameter_overrides or {})
        self._physical: dict[str, str] = {}
        self._conditions: dict[str, bool] = {}

    # -- parameters and intrinsics ---------------------------------------------------------
    def _parameters(self, overrides: Mapping[str, str]) -> dict[str, str]:
        declared: dict[str, Any] = self.document.get("Parameters", {})
        unknown = sorted(set(overrides) - set(declared))
        if unknown:
            raise TemplateError(
                f"unknown parameter(s) {', '.join(unknown)}; declared: {sorted(declared)}"
            )
        values: dict[str, str] = {}
        for name, spec in declared.items():
            if name in overrides:
                value = str(overrides[name])
            elif "Default" in spec:
                value = _scalar(spec["Default"])
            else:
                raise TemplateError(f"parameter {name} has no default; pass a value for it")
            allowed = spec.get("AllowedValues")
            if allowed is not None and value not in {_scalar(a) for a in allowed}:
                raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
            pattern = spec.get("AllowedPattern")
            if pattern is not None and not re.fullmatch(pattern, value):
                raise TemplateError(f"parameter {name}={value!r} does not match {pattern}")
            if spec.get("Type") == "Number":
                _check_number(name, value, spec)
            values[name] = value
        return values

    def pseudo(self, name: str) -> str:
        values = {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": (
                f"arn:aws:cloudformation:{self.region}:{self.account}:stack/{self.stack_name}/local"
            ),
        }
        if name not in values:
            raise TemplateError(f"pseudo parameter {name} is not available locally")
        return values[name]

    def physical_id(self, logical_id: str) -> str:
        """What !Ref of a resource gives: its name, like CloudFormation's, without randomness."""
        if logical_id in self._physical:
            return self._physical[logical_id]
        resource = self.resources.get(logical_id)
        if resource is None:
            raise TemplateError(f"!Ref {logical_id}: no such parameter or resource here")
        properties = resource.get("Properties") or {}
        name_key = {
            "AWS::S3::Bucket": "BucketName",
            "AWS::Serverless::Function": "FunctionName",
            "AWS::Serverless::Api": "Name",
        }.get(resource["Type"])
        if name_key is None:
            # Other resources' Refs are ARNs or URLs the local stack does not make.
            raise TemplateError(f"!Ref {logical_id} ({resource['Type']}) is not resolved locally")
        if name_key in properties:
            name = self.resolve(properties[name_key])
        else:
            name = f"{self.stack_name}-{_kebab(logical_id)}"
        self._physical[logical_id] = name
        return name

    def set_physical(self, logical_id: str, physical_id: str) -> None:
        """The id a service gave a resource (an API's id, a key's id) once it exists."""
        self._physical[logical_id] = physical_id

    def outputs(self) -> dict[str, str]:
        """The stack outputs that resolve locally (others, such as queue URLs, are left out)."""
        resolved = {}
        for name, output in (self.document.get("Outputs") or {}).items():
            try:
                resolved[name] = self.resolve(output["Value"])
            except TemplateError:
                continue
        return resolved

    def _get_att(self, logical_id: str, attribute: str) -> str:
        resource_type = self.resources.get(logical_id, {}).get("Type")
        if resource_type == "AWS::S3::Bucket" and attribute == "Arn":
            return f"arn:aws:s3:::{self.physical_id(logical_id)}"
        raise TemplateError(f"!GetAtt {logical_id}.{attribute} is not resolved locally")

    def _ref(self, name: str) -> str:
        if name in self.parameters:
            return self.parameters[name]
        if name.startswith("AWS::"):
            return self.pseudo(name)
        return self.physical_id(name)

    # -- conditions ---------------------------------------------------------------------------
    def condition(self, name: str) -> bool:
        """A named condition of the template's Conditions, evaluated once."""
        if name not in self._conditions:
            declared = self.document.get("Conditions") or {}
            if name not in declared:
                raise TemplateError(f"condition {name} is not declared in Conditions")
            self._conditions[name] = self._truth(declared[name])
        return self._conditions[name]

    def _truth(self, expression: Any) -> bool:
        if isinstance(expression, dict) and len(expression) == 1:
            ((function, argument),) = expression.items()
            if function == "Condition":
                return self.condition(argument)
            if function == "Fn::Equals":
                left, right = argument
                return self.resolve(left) == self.resolve(right)
            if function == "Fn::Not":
                (inner,) = argument
                return not self._truth(inner)
            if function == "Fn::And":
                return all(self._truth(item) for item in argument)
            if function == "Fn::Or":
                return any(self._truth(item) for item in argument)
        raise TemplateError(f"cannot evaluate the condition {expression!r} locally")

    def select(self, value: Any) -> Any:
        """VALUE with every Fn::If replaced by the branch its condition picks (recursively),
        and AWS::NoValue removed, as CloudFormation does before anything reads it."""
        if value == {"Ref": "AWS::NoValue"}:
            return _NO_VALUE
        if isinstance(value, dict):
            if set(value) == {"Fn::If"}:
                name, when_true, when_false = value["Fn::If"]
                return self.select(when_true if self.condition(name) else when_false)
            return {
                key: selected
                for key, item in value.items()
                if (selected := self.select(item)) is not _NO_VALUE
            }
        if isinstance(value, list):
            return [selected for item in value if (selected := self.select(item)) is not _NO_VALUE]
        return value

    def resolve(self, value: Any) -> str:
        """A template value (scalar or intrinsic) as the string CloudFormation would give."""
        if isinstance(value, dict) and len(value) == 1:
            ((function, argument),) = value.items()
            if function == "Fn::If":
                return self.resolve(self.select(value))
            if function == "Ref":
                return self._ref(argument)
            if function == "Fn::Sub":
                text, variables = (argument, {}) if isinstance(argument, str) else argument
                return _SUB_VARIABLE.sub(
                    lambda m: (
                        "${" + m[1][1:] + "}"  # ${!Name} is the literal ${Name}
                        if m[1].startswith("!")
                        else self._sub_variable(m[1], variables)
                    ),
                    text,
                )
            if function == "Fn::GetAtt":
                target, attribute = (
                    argument.split(".", 1) if isinstance(argument, str) else argument
                )
                return self._get_att(target, attribute)
            if function == "Fn::Join":
                separator, items = argument
                return str(separator).join(self.resolve(item) for item in items)
        if isinstance(value, dict | list):
            raise TemplateError(f"cannot resolve {value!r} locally")
        return _scalar(value)

    def _sub_variable(self, name: str, variables: Mapping[str, Any]) -> str:
        if name in variables:
            return self.resolve(variables[name])
        if "." in name and not name.startswith("AWS::"):
            target, attribute = name.split(".", 1)
            return self._get_att(target, attribute)
        return self._ref(name)

    # -- resources --------------------------------------------------------------------------
    def _of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """Resources of a type that the stack creates (their Condition, if any, holds)."""
        return {
            logical_id: resource
            for logical_id, resource in self.resources.items()
            if resource.get("Type") == resource_type
            and ("Condition" not in resource or self.condition(resource["Condition"]))
        }

    def _function_properties(self, logical_id: str) -> dict[str, Any]:
        """The function's properties with Globals merged in (maps merge, lists prepend),
        conditional values (Fn::If) decided."""
        merged = copy.deepcopy(self.document.get("Globals", {}).get("Function", {}))
        own = self.resources[logical_id].get("Properties") or {}
        properties: dict[str, Any] = self.select(_merge(merged, own))
        return properties

    def functions(self) -> dict[str, FunctionDef]:
        result: dict[str, FunctionDef] = {}
        for logical_id in self._of_type("AWS::Serverless::Function"):
            props = self._function_properties(logical_id)
            if props.get("PackageType", "Zip") != "Zip":
                raise TemplateError(f"{logical_id}: only Zip functions run locally")
            variables = (props.get("Environment") or {}).get("Variables") or {}
            environment = {name: self.resolve(v) for name, v in variables.items()}
            logging_config = props.get("LoggingConfig") or {}
            if "LogFormat" in logging_config:
                environment.setdefault(
                    "AWS_LAMBDA_LOG_FORMAT", self.resolve(logging_config["LogFormat"])
                )
            if "ApplicationLogLevel" in logging_config:
                environment.setdefault(
                    "AWS_LAMBDA_LOG_LEVEL", self.resolve(logging_config["ApplicationLogLevel"])
                )
            retries = (props.get("EventInvokeConfig") or {}).get("MaximumRetryAttempts", 2)
            result[logical_id] = FunctionDef(
                logical_id=logical_id,
                name=self.physical_id(logical_id),
                handler=self.resolve(props["Handler"]),
                runtime=self.resolve(props.get("Runtime", "")),
                code_dir=self.root / self.resolve(props["CodeUri"]),
                layer_dirs=tuple(self._layer_dir(layer) for layer in props.get("Layers", [])),
                memory_mb=int(self.resolve(props.get("MemorySize", 128))),
                timeout_s=int(self.resolve(props.get("Timeout", 3))),
                environment=environment,
                retry_attempts=int(self.resolve(retries)),
            )
        return result

    def _layer_dir(self, layer: Any) -> Path:
        if not (isinstance(layer, dict) and set(layer) == {"Ref"}):
            raise TemplateError(f"layer {layer!r}: only layers of this template run locally")
        logical_id = layer["Ref"]
        resource = self.resources.get(logical_id, {})
        if resource.get("Type") != "AWS::Serverless::LayerVersion":
            raise TemplateError(f"layer {logical_id} is not a layer of this template")
        # Lambda unpacks a layer into /opt; Python layers put their packages in python/.
        return self.root / self.resolve(resource["Properties"]["ContentUri"]) / "python"

    def buckets(self) -> list[BucketDef]:
        return [
            BucketDef(
                logical_id=logical_id,
                name=self.physical_id(logical_id),
                versioned=(
                    ((resource.get("Properties") or {}).get("VersioningConfiguration") or {}).get(
                        "Status"
                    )
                    == "Enabled"
                ),
            )
            for logical_id, resource in self._of_type("AWS::S3::Bucket").items()
        ]

    def _events(self, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(function id, event properties) of every function event of type KIND."""
        for function_id in self._of_type("AWS::Serverless::Function"):
            props = self._function_properties(function_id)
            for event in (props.get("Events") or {}).values():
                if event.get("Type") == kind:
                    yield function_id, event["Properties"]

    def apis(self) -> list[ApiSpec]:
        routes: dict[str, list[Route]] = {}
        for function_id, properties in self._events("Api"):
            api_ref = properties.get("RestApiId")
            if not (isinstance(api_ref, dict) and "Ref" in api_ref):
                raise TemplateError(f"{function_id}: Api events need an explicit RestApiId")
            api_id = api_ref["Ref"]
            api_auth = self.resources[api_id]["Properties"].get("Auth") or {}
            auth = properties.get("Auth") or {}
            required = auth.get("ApiKeyRequired", api_auth.get("ApiKeyRequired", False))
            routes.setdefault(api_id, []).append(
                Route(
                    method=str(properties["Method"]).upper(),
                    path=str(properties["Path"]),
                    function=function_id,
                    api_key_required=bool(required),
                )
            )
        result = []
        for api_id, resource in self._of_type("AWS::Serverless::Api").items():
            props = resource["Properties"]
            routes.setdefault(api_id, []).extend(self._mock_routes(api_id, props))
            plan = (props.get("Auth") or {}).get("UsagePlan") or {}
            usage_plan = None
            if plan.get("CreateUsagePlan", "NONE") != "NONE":
                throttle = plan.get("Throttle") or {}
                quota = plan.get("Quota") or {}
                usage_plan = UsagePlanSpec(
                    rate_limit=_number(self, throttle.get("RateLimit"), float),
                    burst_limit=_number(self, throttle.get("BurstLimit"), int),
                    quota_limit=_number(self, quota.get("Limit"), int),
                    quota_period=self.resolve(quota["Period"]) if "Period" in quota else None,
                    description=self.resolve(plan.get("Description", "")),
                )
            result.append(
                ApiSpec(
                    logical_id=api_id,
                    name=self.physical_id(api_id),
                    stage=self.resolve(props["StageName"]),
                    routes=tuple(routes.get(api_id, [])),
                    usage_plan=usage_plan,
                    binary_media_types=tuple(
                        self.resolve(t) for t in props.get("BinaryMediaTypes", [])
                    ),
                )
            )
        return result

    def _mock_routes(self, api_id: str, props: Mapping[str, Any]) -> Iterator[Route]:
        """The MOCK integrations of an API's DefinitionBody (MergeDefinitions adds the
        functions' routes to it, which the Api events already gave)."""
        body = props.get("DefinitionBody") or {}
        default_key = bool((props.get("Auth") or {}).get("ApiKeyRequired", False))
        for path, methods in (body.get("paths") or {}).items():
            for method, operation in methods.items():
                if method == "parameters":
                    continue
                where = f"{api_id} {method.upper()} {path}"
                integration = operation.get("x-amazon-apigateway-integration") or {}
                if str(integration.get("type", "")).lower() != "mock":
                    raise TemplateError(f"{where}: the local stack serves MOCK integrations only")
                security = operation.get("security") or []
                if any("api_key_false" in s for s in security):
                    required = False
                else:
                    required = default_key or any("api_key" in s for s in security)
                yield Route(
                    method=method.upper(),
                    path=path,
                    function=None,
                    api_key_required=required,
                    mock=_mock_answer(where, integration),
                )

    def s3_triggers(self) -> list[S3Trigger]:
        triggers = []
        for function_id, properties in self._events("S3"):
            events = properties["Events"]
            rules = ((properties.get("Filter") or {}).get("S3Key") or {}).get("Rules", [])
            by_name = {str(r["Name"]).lower(): self.resolve(r["Value"]) for r in rules}
            triggers.append(
                S3Trigger(
                    function=function_id,
                    bucket=self.resolve(properties["Bucket"]),
                    events=tuple([events] if isinstance(events, str) else events),
                    prefix=by_name.get("prefix", ""),
                    suffix=by_name.get("suffix", ""),
                )
            )
        return triggers


def _mock_answer(where: str, integration: Mapping[str, Any]) -> MockAnswer:
    """The integration response API Gateway picks: the request template sets a status,
    the first response whose pattern matches it answers, else the default one."""
    request = (integration.get("requestTemplates") or {}).get("application/json", "{}")
    try:
        selected = str(json.loads(request).get("statusCode", 200))
    except (ValueError, AttributeError):
        raise TemplateError(
            f"{where}: the request template must be JSON with a statusCode"
        ) from None
    responses = integration.get("responses") or {}
    chosen = next(
        (r for p, r in responses.items() if p != "default" and re.fullmatch(p, selected)),
        responses.get("default"),
    )
    if chosen is None:
        raise TemplateError(f"{where}: no integration response for status {selected}")
    templates = chosen.get("responseTemplates") or {}
    content_type, body = next(iter(templates.items()), ("application/json", ""))
    return MockAnswer(status=int(chosen["statusCode"]), body=body, content_type=content_type)


def _check_number(name: str, value: str, spec: Mapping[str, Any]) -> None:
    try:
        number = float(value)
    except ValueError:
        raise TemplateError(f"parameter {name}={value!r} is not a number") from None
    if "MinValue" in spec and number < float(spec["MinValue"]):
        raise TemplateError(f"parameter {name}={value} is below its MinValue {spec['MinValue']}")
    if "MaxValue" in spec and number > float(spec["MaxValue"]):
        raise TemplateError(f"parameter {name}={value} is above its MaxValue {spec['MaxValue']}")


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            base[key] = _merge(base[key], value)
        elif isinstance(value, list) and isinstance(base.get(key), list):
            base[key] = [*base[key], *value]
        else:
            base[key] = copy.deepcopy(value)
    return base


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _number(template: Template, value: Any, kind: type[_N]) -> _N | None:
    return None if value is None else kind(float(template.resolve(value)))


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()
