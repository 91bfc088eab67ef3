"""What the local stack reads from the SAM template that `sam build` wrote.

The template is read the way `sam local` reads it, by aws-sam-cli itself: its translator
wrapper runs SAM's plugins (Globals merged into each function and API, an implicit API for
events without a RestApiId), its intrinsic resolver resolves the properties (Ref, GetAtt,
Join, Select, FindInMap and the conditions' Equals, Not, And, Or), and its function provider
makes each function's code, handler, runtime, layers, limits and environment of them.

devstack keeps what SAM does not do locally: the parameters' checks, stable local names for
what CloudFormation would name, the API's keys, usage plan and MOCK integrations, the S3
notifications, and the places where samcli's resolution is not CloudFormation's
(devstack.sam_reading, AWS::NoValue and the resources' Condition).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from samcli.yamlhelper import yaml_parse

if TYPE_CHECKING:
    from devstack.sam_reading import LocalResolver

LOCAL_ACCOUNT = "123456789012"  # moto's default account
# What {"Ref": "AWS::NoValue"} resolves to until the key or item holding it is dropped, as
# CloudFormation drops it (samcli resolves it to None, which its own Fn::If then rejects).
NO_VALUE = "\x00AWS::NoValue\x00"
_N = TypeVar("_N", int, float)
_LAYER_TYPES = {"AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"}
# The resources CloudFormation names from the stack's name, and the property that names them.
_NAME_PROPERTY = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::Serverless::Function": "FunctionName",
    "AWS::Serverless::Api": "Name",
    "AWS::Serverless::StateMachine": "Name",
}


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
class StateMachineDef:
    logical_id: str
    name: str
    arn: str  # what !Ref gives, known before Step Functions makes it (see Template._names)
    definition: Mapping[str, Any]  # substituted, parsed
    type: str = "STANDARD"


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
        source_dir: Path | None = None,
    ) -> None:
        self.path = path
        self.root = path.parent
        # Where the relative paths sam build leaves pointing out of the build (a state
        # machine's DefinitionUri) start: the folder sam build wrote PATH in, when PATH is
        # a copy of it elsewhere (the local stack's snapshot).
        self.source_dir = source_dir or self.root
        self.document = read_document(path)
        self.stack_name = stack_name
        self.region = region
        self.account = account
        self.resources: dict[str, Any] = self.document.get("Resources") or {}
        self.parameters = self._parameters(parameter_overrides or {})
        _check_conditions_declared(self.document)
        # What a Ref of a parameter or pseudo parameter gives (samcli's logical id
        # translator). Strings, as CloudFormation's values are: samcli would keep a
        # Default's YAML type, and leaves a Ref to a float Default unresolved.
        self._values: dict[str, Any] = {
            "AWS::StackName": stack_name,
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{account}:stack/{stack_name}/local",
            "AWS::NoValue": NO_VALUE,
            **self.parameters,
        }
        self._named: dict[str, dict[str, str]] = {}
        # samcli's translator costs ~0.5 s of imports: paid by what reads a template, not by
        # the gateway and the others that use this module's dataclasses only.
        from devstack import sam_reading

        self._symbols = sam_reading.LocalSymbols(self.document, self._values, self._names)
        self._resolver: LocalResolver = sam_reading.LocalResolver(self.document, self._symbols)

    # -- parameters, names and intrinsics ----------------------------------------------------
    def _parameters(self, overrides: Mapping[str, str]) -> dict[str, str]:
        # samcli checks no value (SamBaseProvider._get_parameter_values merges defaults and
        # overrides); CloudFormation refuses what these checks refuse.
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
                value = scalar(spec["Default"])
            else:
                raise TemplateError(f"parameter {name} has no default; pass a value for it")
            allowed = spec.get("AllowedValues")
            if allowed is not None and value not in {scalar(a) for a in allowed}:
                raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
            pattern = spec.get("AllowedPattern")
            if pattern is not None and not re.fullmatch(pattern, value):
                raise TemplateError(f"parameter {name}={value!r} does not match {pattern}")
            if spec.get("Type") == "Number":
                _check_number(name, value, spec)
            values[name] = value
        return values

    def _names(self, logical_id: str) -> dict[str, str] | None:
        """What Ref and GetAtt of a resource give locally: its name (a state machine's
        ARN), like CloudFormation's, without randomness (samcli gives the logical id); None
        for the resources the local stack does not make. ARNs follow from the names, so
        what refers to a state machine resolves before Step Functions makes it."""
        if logical_id in self._named:
            return self._named[logical_id]
        resource = self._resource(logical_id)
        name_key = _NAME_PROPERTY.get((resource or {}).get("Type", ""))
        if resource is None or name_key is None:
            return None
        properties = resource.get("Properties") or {}
        if name_key in properties:
            name = self.resolve(properties[name_key])
        else:
            name = f"{self.stack_name}-{_kebab(logical_id)}"
        names = {"Ref": name}
        kind = resource["Type"]
        if kind == "AWS::S3::Bucket":
            names["Arn"] = f"arn:aws:s3:::{name}"
        elif kind == "AWS::Serverless::Function":
            names["Arn"] = self.function_arn(name)
        elif kind == "AWS::Serverless::StateMachine":
            arn = f"arn:aws:states:{self.region}:{self.account}:stateMachine:{name}"
            names = {"Ref": arn, "Arn": arn, "Name": name}
        self._named[logical_id] = names
        return names

    def _resource(self, logical_id: str) -> dict[str, Any] | None:
        """A resource of the template, or one SAM's plugins added (an implicit API)."""
        resource: dict[str, Any] | None = self.resources.get(logical_id)
        if resource is None and "_plugged" in self.__dict__:
            resource = self._plugged.get(logical_id)
        return resource

    def function_arn(self, name: str) -> str:
        """A function's ARN, which the local Lambda API (devstack.lambda_api) answers."""
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{name}"

    def physical_id(self, logical_id: str) -> str:
        """What !Ref of a resource gives: its name (a state machine's ARN), without randomness."""
        names = self._names(logical_id)
        if names is not None:
            return names["Ref"]
        resource = self._resource(logical_id)
        if resource is None:
            raise TemplateError(f"!Ref {logical_id}: no such parameter or resource here")
        # Other resources' Refs are ARNs or URLs the local stack does not make.
        raise TemplateError(f"!Ref {logical_id} ({resource['Type']}) is not resolved locally")

    def set_physical(self, logical_id: str, physical_id: str) -> None:
        """The id a service gave a resource (an API's id, a key's id) once it exists."""
        self._named[logical_id] = {"Ref": physical_id}

    def outputs(self) -> dict[str, str]:
        """The stack outputs that resolve locally (others, such as queue URLs, are left out)."""
        resolved = {}
        for name, output in (self.document.get("Outputs") or {}).items():
            try:
                resolved[name] = self.resolve(output["Value"])
            except TemplateError:
                continue
        return resolved

    def condition(self, name: str) -> bool:
        """A named condition of the template's Conditions."""
        from devstack.sam_reading import RESOLVE_ERRORS

        try:
            return self._resolver.condition(name)
        except RESOLVE_ERRORS as exc:
            raise TemplateError(str(exc)) from None

    def resolve(self, value: Any) -> str:
        """A template value (scalar or intrinsic) as the string CloudFormation would give."""
        from devstack.sam_reading import RESOLVE_ERRORS

        try:
            resolved = self._resolver.intrinsic_property_resolver(value, False)
        except RESOLVE_ERRORS as exc:
            raise TemplateError(f"cannot resolve {value!r} locally: {exc}") from None
        return _text(repr(value), resolved)

    # -- resources, as samcli reads them -----------------------------------------------------
    @cached_property
    def _plugged(self) -> dict[str, Any]:
        """The resources after SAM's plugins, intrinsics still in place."""
        from devstack.sam_reading import plugged_resources

        return plugged_resources(self.path, self.document, self._values)

    @cached_property
    def _resolved(self) -> dict[str, dict[str, Any]]:
        """The plugged resources, their intrinsics resolved by samcli's resolver (what it
        cannot resolve stays as it is: reading it is an error); as CloudFormation does and
        samcli does not, resources whose Condition is false left out, AWS::NoValue dropped."""
        from devstack.sam_reading import LocalResolver

        template = {k: v for k, v in self.document.items() if k in {"Conditions", "Mappings"}}
        template["Resources"] = self._plugged
        resolved = LocalResolver(template, self._symbols).resolve_template(ignore_errors=True)
        return {
            logical_id: _drop_no_value(resource)
            for logical_id, resource in resolved["Resources"].items()
            if "Condition" not in resource or self.condition(resource["Condition"])
        }

    def _of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self._resolved.items()
            if resource.get("Type") == resource_type
        }

    def functions(self) -> dict[str, FunctionDef]:
        from devstack.sam_reading import sam_functions

        found = sam_functions(self.path, self._resolved)
        result: dict[str, FunctionDef] = {}
        for logical_id, resource in self._of_type("AWS::Serverless::Function").items():
            function = found.get(logical_id)
            # samcli leaves out (with a warning at most) functions whose code is in S3 or an
            # image; InlineCode has no folder.
            if function is None or function.packagetype != "Zip" or function.codeuri is None:
                raise TemplateError(f"{logical_id}: only Zip functions with local code run here")
            properties = resource.get("Properties") or {}
            retries = (properties.get("EventInvokeConfig") or {}).get("MaximumRetryAttempts")
            result[logical_id] = FunctionDef(
                logical_id=logical_id,
                name=self.physical_id(logical_id),
                handler=_text(f"{logical_id} Handler", function.handler),
                runtime=_text(f"{logical_id} Runtime", function.runtime or ""),
                code_dir=Path(function.codeuri),
                layer_dirs=self._layer_dirs(logical_id, properties, function.layers),
                memory_mb=_integer(f"{logical_id} MemorySize", function.memory, 128),
                timeout_s=_integer(f"{logical_id} Timeout", function.timeout, 3),
                environment=_environment(logical_id, function),
                retry_attempts=_integer(f"{logical_id} MaximumRetryAttempts", retries, 2),
            )
        return result

    def _layer_dirs(
        self, logical_id: str, properties: Mapping[str, Any], layers: list[Any]
    ) -> tuple[Path, ...]:
        # samcli skips, without a word, a layer it cannot follow, and takes any string for a
        # published layer's ARN: the local stack runs the layers of this template only.
        declared = properties.get("Layers") or []
        for layer in declared:
            target = layer.get("Ref") if isinstance(layer, dict) and len(layer) == 1 else None
            if self._resolved.get(str(target), {}).get("Type") not in _LAYER_TYPES:
                raise TemplateError(
                    f"{logical_id}: layer {layer!r}: only layers of this template run locally"
                )
        if len(layers) != len(declared) or any(layer.codeuri is None for layer in layers):
            raise TemplateError(f"{logical_id}: only layers with local content run locally")
        # Lambda unpacks a layer into /opt; Python layers put their packages in python/.
        return tuple(Path(layer.codeuri) / "python" for layer in layers)

    def state_machines(self) -> list[StateMachineDef]:
        """The AWS::Serverless::StateMachine resources, their definitions substituted."""
        from devstack.asl import read_definition

        result = []
        for logical_id, resource in self._of_type("AWS::Serverless::StateMachine").items():
            properties = resource.get("Properties") or {}
            substitutions = {
                name: _text(f"{logical_id} DefinitionSubstitutions {name}", value)
                for name, value in (properties.get("DefinitionSubstitutions") or {}).items()
            }
            names = self._names(logical_id)
            assert names is not None  # a state machine is named (_NAME_PROPERTY)
            result.append(
                StateMachineDef(
                    logical_id=logical_id,
                    name=names["Name"],
                    arn=names["Arn"],
                    definition=read_definition(
                        logical_id, properties, self.source_dir, substitutions
                    ),
                    type=_text(f"{logical_id} Type", properties.get("Type", "STANDARD")).upper(),
                )
            )
        return result

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

    def _events(self, kind: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(function id, event name, event properties) of every function event of type KIND."""
        for function_id, function in self._of_type("AWS::Serverless::Function").items():
            for name, event in ((function.get("Properties") or {}).get("Events") or {}).items():
                if event.get("Type") == kind:
                    yield function_id, name, event.get("Properties") or {}

    def apis(self) -> list[ApiSpec]:
        apis = self._of_type("AWS::Serverless::Api")
        routes: dict[str, list[Route]] = {}
        for function_id, event, properties in self._events("Api"):
            where = f"{function_id} {event}"
            # Resolved, a RestApiId is the API's name; the Ref says which API it is (SAM's
            # plugins give an event without one the implicit ServerlessRestApi's).
            plugged = self._plugged[function_id]["Properties"]["Events"][event]["Properties"]
            api_ref = plugged.get("RestApiId")
            api_id = api_ref.get("Ref") if isinstance(api_ref, dict) else None
            if api_id not in apis:
                raise TemplateError(f"{where}: RestApiId must be a !Ref of an API here")
            api_auth = (apis[api_id].get("Properties") or {}).get("Auth") or {}
            auth = properties.get("Auth") or {}
            required = auth.get("ApiKeyRequired", api_auth.get("ApiKeyRequired", False))
            routes.setdefault(api_id, []).append(
                Route(
                    method=_text(f"{where} Method", properties.get("Method")).upper(),
                    path=_text(f"{where} Path", properties.get("Path")),
                    function=function_id,
                    api_key_required=_flag(required),
                )
            )
        result = []
        for api_id, resource in apis.items():
            props = resource.get("Properties") or {}
            routes.setdefault(api_id, []).extend(self._mock_routes(api_id, props))
            plan = (props.get("Auth") or {}).get("UsagePlan") or {}
            usage_plan = None
            if plan.get("CreateUsagePlan", "NONE") != "NONE":
                throttle = plan.get("Throttle") or {}
                quota = plan.get("Quota") or {}
                usage_plan = UsagePlanSpec(
                    rate_limit=_number(f"{api_id} RateLimit", throttle.get("RateLimit"), float),
                    burst_limit=_number(f"{api_id} BurstLimit", throttle.get("BurstLimit"), int),
                    quota_limit=_number(f"{api_id} Quota Limit", quota.get("Limit"), int),
                    quota_period=(
                        _text(f"{api_id} Quota Period", quota["Period"])
                        if "Period" in quota
                        else None
                    ),
                    description=_text(f"{api_id} UsagePlan", plan.get("Description", "")),
                )
            result.append(
                ApiSpec(
                    logical_id=api_id,
                    name=self.physical_id(api_id),
                    stage=_text(f"{api_id} StageName", props.get("StageName")),
                    routes=tuple(routes.get(api_id, [])),
                    usage_plan=usage_plan,
                    binary_media_types=tuple(
                        _text(f"{api_id} BinaryMediaTypes", media_type)
                        for media_type in props.get("BinaryMediaTypes") or []
                    ),
                )
            )
        return result

    def _mock_routes(self, api_id: str, props: Mapping[str, Any]) -> Iterator[Route]:
        """The MOCK integrations of an API's DefinitionBody (MergeDefinitions adds the
        functions' routes to it, which the Api events already gave)."""
        if props.get("__MANAGE_SWAGGER"):
            return  # SAM's plugins wrote this body from the Api events: it holds no MOCK
        body = props.get("DefinitionBody") or {}
        default_key = _flag((props.get("Auth") or {}).get("ApiKeyRequired", False))
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
        for function_id, event, properties in self._events("S3"):
            where = f"{function_id} {event}"
            events = properties["Events"]
            rules = ((properties.get("Filter") or {}).get("S3Key") or {}).get("Rules", [])
            by_name = {str(r["Name"]).lower(): _text(where, r["Value"]) for r in rules}
            triggers.append(
                S3Trigger(
                    function=function_id,
                    bucket=_text(f"{where} Bucket", properties.get("Bucket")),
                    events=tuple([events] if isinstance(events, str) else events),
                    prefix=by_name.get("prefix", ""),
                    suffix=by_name.get("suffix", ""),
                )
            )
        return triggers


def _environment(logical_id: str, function: Any) -> dict[str, str]:
    """A samcli Function's variables, and what its LoggingConfig sets, as Lambda does."""
    variables = (function.environment or {}).get("Variables") or {}
    environment = {
        name: _text(f"{logical_id} environment variable {name}", value)
        for name, value in variables.items()
    }
    logging_config = function.logging_config or {}
    if "LogFormat" in logging_config:
        environment.setdefault(
            "AWS_LAMBDA_LOG_FORMAT", _text(f"{logical_id} LogFormat", logging_config["LogFormat"])
        )
    if "ApplicationLogLevel" in logging_config:
        level = logging_config["ApplicationLogLevel"]
        environment.setdefault("AWS_LAMBDA_LOG_LEVEL", _text(f"{logical_id} LogLevel", level))
    return environment


def _text(where: str, value: Any) -> str:
    """A resolved scalar as the string CloudFormation gives. What is still an intrinsic could
    not be resolved locally: an error here, where samcli would pass an empty string on."""
    if value is None or value == NO_VALUE or isinstance(value, dict | list):
        raise TemplateError(f"{where}: cannot resolve {value!r} locally")
    return scalar(value)


def _integer(where: str, value: Any, default: int) -> int:
    if value is None:
        return default
    try:
        return int(_text(where, value))
    except ValueError:
        raise TemplateError(f"{where}: {value!r} is not a whole number") from None


def _number(where: str, value: Any, kind: type[_N]) -> _N | None:
    return None if value is None else kind(float(_text(where, value)))


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _drop_no_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _drop_no_value(item) for key, item in value.items() if item != NO_VALUE}
    if isinstance(value, list):
        return [_drop_no_value(item) for item in value if item != NO_VALUE]
    return value


def read_document(path: Path) -> dict[str, Any]:
    """The template at PATH as samcli parses it, a copy of its own to change."""
    return copy.deepcopy(_parsed(path.read_text()))


@functools.lru_cache(maxsize=4)
def _parsed(text: str) -> dict[str, Any]:
    # samcli's YAML reader is pure Python (~90 ms for template.yaml), and one run of
    # devstack or its tests reads the same text many times.
    document: dict[str, Any] = yaml_parse(text)
    return document


def _check_conditions_declared(document: Mapping[str, Any]) -> None:
    """Every condition named (by Fn::If or a resource's Condition) is declared: samcli would
    leave the value unresolved without saying which condition is missing."""
    declared = set(document.get("Conditions") or {})
    sections = [document.get(key) for key in ("Conditions", "Globals", "Resources", "Outputs")]
    for name in _condition_names(sections):
        if name not in declared:
            raise TemplateError(f"condition {name} is not declared in Conditions")


def _condition_names(value: Any) -> Iterator[str]:
    if isinstance(value, list):
        for item in value:
            yield from _condition_names(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "Fn::If" and isinstance(item, list) and item and isinstance(item[0], str):
                yield item[0]
            elif key == "Condition" and isinstance(item, str):
                yield item
            yield from _condition_names(item)


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


def scalar(value: Any) -> str:
    """A template scalar as CloudFormation's string (true, not True)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()
