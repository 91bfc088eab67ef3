"""Every allowed value of every enumerated parameter deploys: rendered and linted.

cfn-lint checks a property's allowed values only where it sees a literal, not through a
`!Ref` to a parameter, so `LogLevel=WARNING` once linted clean and failed at deploy
(ApplicationLogLevel takes WARN). Here the transformed template is rendered as
CloudFormation would with given values (parameters substituted, conditions decided,
Fn::If chosen, AWS::NoValue dropped) and the concrete result is linted.

Each allowed value is rendered once, not every combination: rendering K takes the Kth
allowed value of each parameter (cycling through shorter lists), so the longest list
sets the number of renderings and every value of every parameter is in one of them.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint  # type: ignore[import-untyped]
from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform  # type: ignore[import-untyped]

from tests.support.sam_template import (
    PSEUDO_PARAMETERS,
    TEMPLATE,
    NoManagedPolicies,
    package,
    parameter_values,
)

pytestmark = pytest.mark.slow  # a translate and a cfn-lint per rendering

_PARAMETERS = yaml_parse(TEMPLATE.read_text())["Parameters"]
ENUMERATED = {
    name: [str(value) for value in spec["AllowedValues"]]
    for name, spec in _PARAMETERS.items()
    if "AllowedValues" in spec
}
RENDERINGS = max(len(values) for values in ENUMERATED.values())
_DROP = object()  # what AWS::NoValue renders to
_SUB = re.compile(r"\$\{([^}!][^}]*)\}")


def values_of(rendering: int) -> dict[str, str]:
    return {name: values[rendering % len(values)] for name, values in ENUMERATED.items()}


class Renderer:
    """CloudFormation's view of a transformed template for given parameter values."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, Any]) -> None:
        self.parameters = {name: str(value) for name, value in parameters.items()}
        self.conditions = template.get("Conditions", {})
        self._decided: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._decided:
            self._decided[name] = self.truth(self.conditions[name])
        return self._decided[name]

    def truth(self, node: Any) -> bool:
        (function, argument), *_ = node.items()
        if function == "Condition":
            return self.condition(argument)
        if function == "Fn::Equals":
            left, right = (self.value(part) for part in argument)
            return str(left) == str(right)
        if function == "Fn::Not":
            return not self.truth(argument[0])
        if function == "Fn::And":
            return all(self.truth(part) for part in argument)
        if function == "Fn::Or":
            return any(self.truth(part) for part in argument)
        raise AssertionError(f"unknown condition function {function}")

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.value(item) for item in node) if v is not _DROP]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (function, argument), *_ = node.items()
            if function == "Ref" and argument == "AWS::NoValue":
                return _DROP
            if function == "Ref" and argument in self.parameters:
                return self.parameters[argument]
            if function == "Fn::If":
                name, when_true, when_false = argument
                return self.value(when_true if self.condition(name) else when_false)
            if function == "Fn::Sub":
                return {"Fn::Sub": self._sub(argument)}
        rendered = {key: self.value(item) for key, item in node.items()}
        return {key: item for key, item in rendered.items() if item is not _DROP}

    def _sub(self, argument: Any) -> Any:
        def fill(text: str, own: dict[str, Any]) -> str:
            return _SUB.sub(
                lambda m: (
                    self.parameters[m[1]] if m[1] in self.parameters and m[1] not in own else m[0]
                ),
                text,
            )

        if isinstance(argument, str):
            return fill(argument, {})
        text, variables = argument
        return [fill(text, variables), self.value(variables)]

    def render(self, template: dict[str, Any]) -> dict[str, Any]:
        concrete = {k: v for k, v in template.items() if k not in {"Parameters", "Conditions"}}
        concrete["Resources"] = self._kept(template["Resources"])
        outputs = self._kept(template.get("Outputs", {}))
        if outputs:
            concrete["Outputs"] = outputs
        rendered: dict[str, Any] = self.value(concrete)
        return rendered

    def _kept(self, section: dict[str, Any]) -> dict[str, Any]:
        """The entries whose Condition holds, without it."""
        return {
            name: {k: v for k, v in entry.items() if k != "Condition"}
            for name, entry in section.items()
            if "Condition" not in entry or self.condition(entry["Condition"])
        }


def rendered(overrides: dict[str, str]) -> dict[str, Any]:
    parameters = parameter_values(overrides)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", PSEUDO_PARAMETERS["AWS::Region"])
        transformed = transform(
            package(yaml_parse(TEMPLATE.read_text())),
            copy.deepcopy(parameters),
            NoManagedPolicies(),
        )
    names = {k: v for k, v in parameters.items() if not k.startswith("AWS::")}
    return Renderer(transformed, names).render(transformed)


def lint_errors(template: dict[str, Any]) -> list[str]:
    # Errors only: warnings (unused mappings and the like) do not stop a deploy.
    matches = lint(json.dumps(template), config=ManualArgs(regions=["us-east-1"]))
    return [str(m) for m in matches if m.rule.id.startswith("E")]


@pytest.mark.parametrize("rendering", range(RENDERINGS))
def test_each_allowed_value_renders_to_a_template_that_lints_clean(rendering: int) -> None:
    values = values_of(rendering)
    assert lint_errors(rendered(values)) == [], values


def test_every_allowed_value_is_in_some_rendering() -> None:
    covered = {(name, value) for k in range(RENDERINGS) for name, value in values_of(k).items()}
    wanted = {(name, value) for name, values in ENUMERATED.items() for value in values}
    assert covered == wanted


def test_a_value_that_cannot_deploy_is_caught() -> None:
    # What this file exists for: WARNING passed every lint through the parameter.
    errors = lint_errors(rendered({"LogLevel": "WARNING"}))
    assert any("'WARNING' is not one of" in error for error in errors), errors
