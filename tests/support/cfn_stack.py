"""The SAM template as CloudFormation receives it, expanded by aws-sam-translator offline,
and a reader of the result that resolves the intrinsics this project uses."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from samtranslator.translator.transform import transform  # type: ignore[import-untyped]

from tests.support.sam_template import (
    PSEUDO_PARAMETERS,
    NoManagedPolicies,
    document,
    package,
    parameter_values,
)

NO_VALUE = {"Ref": "AWS::NoValue"}
# Physical names the renderer gives; the data bucket's name is computed in the template.
MODEL_BUCKET_ARN = "arn:aws:s3:::<ModelBucket>"
DATA_BUCKET_ARN = "arn:aws:s3:::sklearn-serverless-data-123456789012-us-east-1"
# The property holding the physical name a Ref returns, for the types that have one.
NAME_PROPERTIES = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
}
SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


class Stack:
    """The transformed template, with the parameter values it was transformed with."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, Any]) -> None:
        self.template = template
        self.parameters = parameters
        self.resources: dict[str, dict[str, Any]] = template["Resources"]

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}

    def only(self, resource_type: str) -> tuple[str, dict[str, Any]]:
        found = self.of_type(resource_type)
        assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
        return next(iter(found.items()))

    def props(self, logical_id: str) -> dict[str, Any]:
        properties: dict[str, Any] = self.resources[logical_id].get("Properties", {})
        return properties

    def render(self, value: Any) -> str:
        """A value with its intrinsics resolved: parameters to their values, resources to
        their physical names where the template sets them, to <LogicalId> otherwise."""
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, int | float):
            return str(value)
        if isinstance(value, dict) and len(value) == 1:
            [(function, argument)] = value.items()
            if function == "Ref":
                return self._ref(argument)
            if function == "Fn::GetAtt":
                name, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self._get_att(name, attribute)
            if function == "Fn::Sub":
                text, variables = (argument, {}) if isinstance(argument, str) else argument
                return SUB_VARIABLE.sub(lambda m: self._sub(m.group(1), variables), text)
        raise AssertionError(f"cannot render {value!r}")

    def condition(self, name: str) -> bool:
        """The template's conditions this project uses: Equals, Not and references."""
        return self._truth(self.template["Conditions"][name])

    def _truth(self, expression: dict[str, Any]) -> bool:
        [(function, argument)] = expression.items()
        if function == "Fn::Equals":
            return self.render(argument[0]) == self.render(argument[1])
        if function == "Fn::Not":
            return not self._truth(argument[0])
        if function == "Condition":
            return self.condition(argument)
        raise AssertionError(f"cannot evaluate {expression!r}")

    def choose(self, value: Any) -> Any:
        """VALUE, or the branch its Fn::If picks with this stack's parameters."""
        if isinstance(value, dict) and set(value) == {"Fn::If"}:
            name, when_true, when_false = value["Fn::If"]
            return self.choose(when_true if self.condition(name) else when_false)
        return value

    def statements(self, value: Any) -> list[dict[str, Any]]:
        """A policy's statements as this stack's conditions leave them."""
        chosen = (self.choose(s) for s in as_list(value))
        return [s for s in chosen if s != NO_VALUE]

    def _ref(self, name: str) -> str:
        if name in self.parameters:
            return str(self.parameters[name])
        resource = self.resources[name]
        name_property = NAME_PROPERTIES.get(resource["Type"])
        if name_property and name_property in resource.get("Properties", {}):
            return self.render(resource["Properties"][name_property])
        return f"<{name}>"

    def _get_att(self, name: str, attribute: str) -> str:
        if self.resources[name]["Type"] == "AWS::S3::Bucket" and attribute == "Arn":
            return f"arn:aws:s3:::{self._ref(name)}"
        return f"<{name}.{attribute}>"

    def _sub(self, variable: str, variables: dict[str, Any]) -> str:
        if variable in variables:
            return self.render(variables[variable])
        if "." in variable:
            return self._get_att(*variable.split(".", 1))
        return self._ref(variable)

    def role_statements(self, function_id: str) -> list[dict[str, Any]]:
        role = self.props(function_id)["Role"]
        assert role == {"Fn::GetAtt": [role["Fn::GetAtt"][0], "Arn"]}
        policies = self.props(role["Fn::GetAtt"][0]).get("Policies", [])
        return [s for p in policies for s in self.statements(p["PolicyDocument"]["Statement"])]

    def s3_access(self, function_id: str) -> dict[str, set[str]]:
        """Action -> the rendered resources it is allowed on, for the role's S3 statements."""
        access: dict[str, set[str]] = {}
        for statement in self.role_statements(function_id):
            actions = as_list(statement["Action"])
            if statement["Effect"] != "Allow" or not any(a.startswith("s3:") for a in actions):
                continue
            resources = {self.render(r) for r in as_list(statement["Resource"])}
            for action in actions:
                access.setdefault(action, set()).update(resources)
        return access

    def variables(self, function_id: str) -> dict[str, str]:
        """A function's environment, rendered."""
        variables = self.props(function_id)["Environment"]["Variables"]
        return {name: self.render(value) for name, value in variables.items()}


def transformed(overrides: dict[str, Any]) -> Stack:
    """template.yaml packaged and expanded with the defaults and OVERRIDES (strings, as
    `sam deploy --parameter-overrides` passes them)."""
    parameters = parameter_values(overrides)
    template = package(document())
    with pytest.MonkeyPatch.context() as env:
        # The translator asks boto3 for a region even when AWS::Region is given.
        env.setenv("AWS_DEFAULT_REGION", PSEUDO_PARAMETERS["AWS::Region"])
        expanded = transform(template, copy.deepcopy(parameters), NoManagedPolicies())
    return Stack(expanded, parameters)
