"""One architecture switch: `make build ARCH=...` picks the layers' wheels and the
functions' architecture, and the built template then accepts no other at deploy."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from samcli.yamlhelper import yaml_parse

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "template.yaml"


def _build_layer() -> ModuleType:
    # layers/build_layer.py is a script the layer Makefiles run, not a package module.
    spec = importlib.util.spec_from_file_location("build_layer", ROOT / "layers/build_layer.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


build_layer = _build_layer()


def layer(build: Path, name: str, *tags: str) -> Path:
    """A built layer holding one wheel's dist-info with TAGS."""
    info = build / name / "python" / "pkg-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "WHEEL").write_text(
        "Wheel-Version: 1.0\nRoot-Is-Purelib: false\n" + "".join(f"Tag: {t}\n" for t in tags)
    )
    return build / name


@pytest.fixture
def build(tmp_path: Path) -> Path:
    (tmp_path / "template.yaml").write_text(TEMPLATE.read_text())
    return tmp_path


def architecture(build: Path) -> dict[str, object]:
    parameter: dict[str, object] = yaml_parse((build / "template.yaml").read_text())["Parameters"][
        "Architecture"
    ]
    return parameter


def test_the_built_template_accepts_only_the_layers_architecture(build: Path) -> None:
    assert architecture(build)["AllowedValues"] == ["x86_64", "arm64"]
    layers = [
        layer(build, "OnnxDependenciesLayer", "cp313-cp313-manylinux_2_28_aarch64"),
        layer(build, "SklearnDependenciesLayer", "cp313-cp313-manylinux_2_27_aarch64"),
    ]
    build_layer.pin_architecture(build, layers)
    pinned = architecture(build)
    assert pinned["AllowedValues"] == ["arm64"]
    assert pinned["Default"] == "arm64"
    built = yaml_parse((build / "template.yaml").read_text())
    assert {
        resource["Metadata"]["BuildArchitecture"]
        for resource in built["Resources"].values()
        if "BuildArchitecture" in resource.get("Metadata", {})
    } == {"arm64"}


def test_layers_of_two_architectures_stop_the_build(build: Path) -> None:
    layers = [
        layer(build, "OnnxDependenciesLayer", "cp313-cp313-manylinux_2_28_aarch64"),
        layer(build, "SklearnDependenciesLayer", "cp313-cp313-manylinux_2_28_x86_64"),
    ]
    with pytest.raises(SystemExit, match="mix architectures"):
        build_layer.pin_architecture(build, layers)


def test_pure_python_layers_pin_nothing(build: Path) -> None:
    build_layer.pin_architecture(build, [layer(build, "ModelStoreLayer", "py3-none-any")])
    assert architecture(build)["AllowedValues"] == ["x86_64", "arm64"]


def test_make_build_passes_one_arch_to_the_layers_and_the_functions() -> None:
    planned = subprocess.run(
        ["make", "-n", "--no-print-directory", "build", "ARCH=arm64"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.replace("\\\n", " ")
    sam = next(line for line in planned.splitlines() if " build --build-dir " in line)
    assert "LAYER_ARCH=arm64" in sam
    assert "--parameter-overrides Architecture=arm64" in sam
    assert ".aws-sam/build-arm64" in sam  # never mixed with an x86_64 build's cache
