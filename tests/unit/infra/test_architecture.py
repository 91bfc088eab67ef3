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

from devstack import runtime

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


def _planned_sam_build(*variables: str) -> str:
    planned = subprocess.run(
        ["make", "-n", "--no-print-directory", "build", *variables],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.replace("\\\n", " ")
    return next(line for line in planned.splitlines() if " build --build-dir " in line)


def _option(command: str, name: str) -> str:
    words = command.split()
    return words[words.index(name) + 1]


def test_make_build_passes_one_arch_to_the_layers_and_the_functions() -> None:
    sam = _planned_sam_build("ARCH=arm64")
    assert "LAYER_ARCH=arm64" in sam
    assert "--parameter-overrides Architecture=arm64" in sam
    # Where `sam deploy` looks for the built template, whatever the architecture.
    assert _option(sam, "--build-dir") == ".aws-sam/build"


def test_each_build_toml_serves_one_cache() -> None:
    # sam writes build.toml (each layer's source hash) beside the build dir; two caches
    # under one build.toml take each other's hashes as theirs and copy a stale layer (seen:
    # the 3.13 build kept a model_store layer from before a change the 3.11 build had seen).
    caches: dict[Path, set[str]] = {}
    for version in ("3.13", "3.11", "3.12"):
        for arch in ("x86_64", "arm64"):
            sam = _planned_sam_build(f"PYTHON_VERSION={version}", f"ARCH={arch}")
            build_toml = Path(_option(sam, "--build-dir")).parent / "build.toml"
            caches.setdefault(build_toml, set()).add(_option(sam, "--cache-dir"))
    assert len(caches) == 3  # one per Python version
    assert all(len(dirs) == 1 for dirs in caches.values()), caches


def test_devstack_builds_where_the_makefile_does() -> None:
    for version in ("3.13", "3.11"):
        sam = _planned_sam_build(f"PYTHON_VERSION={version}")
        assert runtime.build_dir(version, ROOT) == ROOT / _option(sam, "--build-dir")
