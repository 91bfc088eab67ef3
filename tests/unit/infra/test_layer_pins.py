"""The Lambda layers run the versions the project trains and tests with, and samconfig.toml
holds what `sam build/deploy/validate/local invoke` need for every environment.

An unpickled model is only safe on the scikit-learn, numpy, scipy and joblib that pickled
it, and an ONNX form is proven on one ONNX Runtime: each layer's pins must equal
pyproject's, and both must equal what this venv runs. The onnx layer holds nothing that
unpickles.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from samcli.yamlhelper import yaml_parse

ROOT = Path(__file__).resolve().parents[3]
LAYERS = ROOT / "layers" / "dependencies"
LAYER_REQUIREMENTS = {"sklearn": LAYERS / "sklearn.txt", "onnx": LAYERS / "onnx.txt"}
LAYER_MAKEFILE = ROOT / "layers" / "dependencies" / "Makefile"
PYPROJECT = ROOT / "pyproject.toml"
SAMCONFIG = ROOT / "samconfig.toml"
TEMPLATE = ROOT / "template.yaml"

PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)")
MODEL_PACKAGES = {"sklearn": ("scikit-learn", "numpy", "scipy", "joblib"), "onnx": ("onnxruntime",)}
UNPICKLERS = ("scikit-learn", "scipy", "joblib")
ENVIRONMENTS = ("default", "dev", "prod")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        match = PIN.match(line)
        if match:
            found[canonical(match.group(1))] = match.group(2)
    return found


def requirement_lines(flavour: str) -> list[str]:
    text = LAYER_REQUIREMENTS[flavour].read_text()
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return [line for line in lines if line]


def layer_pins(flavour: str) -> dict[str, str]:
    return pins(requirement_lines(flavour))


def project_pins() -> dict[str, str]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return pins(project["dependencies"])


SHARED = sorted(
    (flavour, package)
    for flavour in LAYER_REQUIREMENTS
    for package in set(layer_pins(flavour)) & set(project_pins())
)


@pytest.mark.parametrize("flavour", sorted(LAYER_REQUIREMENTS))
def test_every_layer_requirement_is_an_exact_pin(flavour: str) -> None:
    lines = requirement_lines(flavour)
    assert lines
    assert [line for line in lines if not PIN.match(line)] == []


@pytest.mark.parametrize("flavour", sorted(LAYER_REQUIREMENTS))
def test_the_model_packages_are_pinned_in_both(flavour: str) -> None:
    assert set(MODEL_PACKAGES[flavour]) <= set(layer_pins(flavour))
    assert set(MODEL_PACKAGES[flavour]) <= set(project_pins())


@pytest.mark.parametrize("flavour", sorted(LAYER_REQUIREMENTS))
def test_every_layer_package_is_a_project_dependency(flavour: str) -> None:
    # What the functions run on in Lambda is what the test suite runs on here.
    assert set(layer_pins(flavour)) <= set(project_pins())


def test_the_onnx_layer_has_nothing_that_unpickles() -> None:
    assert not set(UNPICKLERS) & set(layer_pins("onnx"))
    assert "numpy" in layer_pins("onnx")


def test_both_layers_serve_with_the_same_function_dependencies() -> None:
    # The functions import the same packages whichever runtime scores.
    sklearn, onnx = layer_pins("sklearn"), layer_pins("onnx")
    common = set(sklearn) - set(MODEL_PACKAGES["sklearn"])
    assert common == set(onnx) - set(MODEL_PACKAGES["onnx"]) - {"numpy"}
    assert all(sklearn[p] == onnx[p] for p in common | {"numpy"})


@pytest.mark.parametrize(("flavour", "package"), SHARED)
def test_layer_pin_equals_project_pin_and_installed_version(flavour: str, package: str) -> None:
    layer, project = layer_pins(flavour)[package], project_pins()[package]
    assert layer == project, f"{flavour} layer {package}=={layer}, pyproject {package}=={project}"
    assert version(package) == project, f"this venv runs {package} {version(package)}"


# -- samconfig.toml ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def samconfig() -> dict[str, Any]:
    return tomllib.loads(SAMCONFIG.read_text())


@pytest.fixture(scope="module")
def template_parameters() -> dict[str, Any]:
    parameters: dict[str, Any] = yaml_parse(TEMPLATE.read_text())["Parameters"]
    return parameters


def section(config: dict[str, Any], environment: str, command: str) -> dict[str, Any]:
    parameters: dict[str, Any] = config[environment][command]["parameters"]
    return parameters


def overrides(value: str | list[str]) -> dict[str, str]:
    """sam's "Key=Value Key=Value" form (a string or a list of them)."""
    items = [i for v in ([value] if isinstance(value, str) else value) for i in shlex.split(v)]
    return dict(item.split("=", 1) for item in items)


def test_samconfig_has_the_three_environments(samconfig: dict[str, Any]) -> None:
    assert set(ENVIRONMENTS) <= set(samconfig)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_stack_name_is_global_and_fits_the_data_bucket_name(
    samconfig: dict[str, Any], environment: str
) -> None:
    stack_name = section(samconfig, environment, "global")["stack_name"]
    assert "stack_name" not in section(samconfig, environment, "deploy")
    # The data bucket is "<stack>-data-<account>-<region>": lowercase, at most 63 characters
    # even in the longest region names.
    assert re.fullmatch(r"[a-z][a-z0-9-]*", stack_name)
    assert len(f"{stack_name}-data-123456789012-ap-southeast-5") <= 63


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_deploy_settings(samconfig: dict[str, Any], environment: str) -> None:
    deploy = section(samconfig, environment, "deploy")
    capabilities = deploy["capabilities"]
    capabilities = capabilities.split() if isinstance(capabilities, str) else capabilities
    assert "CAPABILITY_IAM" in capabilities  # the stack creates the functions' roles
    assert deploy["resolve_s3"] is True  # nothing to create by hand before the first deploy
    assert overrides(deploy["parameter_overrides"])


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_local_invoke_reads_env_json(samconfig: dict[str, Any], environment: str) -> None:
    local_invoke = section(samconfig, environment, "local_invoke")
    assert local_invoke["env_vars"] == "events/env.json"
    assert (ROOT / local_invoke["env_vars"]).is_file()
    assert overrides(local_invoke["parameter_overrides"])


@pytest.mark.parametrize("command", ["deploy", "local_invoke"])
@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_parameter_overrides_name_template_parameters_with_allowed_values(
    samconfig: dict[str, Any], template_parameters: dict[str, Any], environment: str, command: str
) -> None:
    given = overrides(section(samconfig, environment, command)["parameter_overrides"])
    unknown = set(given) - set(template_parameters)
    assert not unknown, f"{environment}.{command} overrides unknown parameters {unknown}"
    for name, value in given.items():
        declared = template_parameters[name]
        if "AllowedValues" in declared:
            assert value in map(str, declared["AllowedValues"]), (name, value)
        if "AllowedPattern" in declared:
            assert re.fullmatch(declared["AllowedPattern"], value), (name, value)
        if declared["Type"] == "Number":
            number = float(value)
            assert number >= declared.get("MinValue", number), (name, value)
            assert number <= declared.get("MaxValue", number), (name, value)
