"""Reproducible builds: the dev environment and each layer install from hashed locks that
agree with the pins people edit (pyproject.toml, layers/dependencies/*.txt)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
LAYERS = ROOT / "layers" / "dependencies"
DEV_LOCK = ROOT / "requirements-dev.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")
# Each lock and the inputs `make lock` makes it from.
LOCKS = {
    "onnx.lock": ("onnx.txt",),
    "sklearn.lock": ("sklearn.txt",),
    "onnx-local.lock": ("onnx.txt", "local.txt"),
    "sklearn-local.lock": ("sklearn.txt", "local.txt"),
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        match = PIN.match(line.strip())
        if match:
            found[canonical(match[1])] = match[2]
    return found


def requirements(lock: Path) -> dict[str, list[str]]:
    """Each requirement of a lock with its --hash options."""
    entries: dict[str, list[str]] = {}
    current = None
    for line in lock.read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = canonical(match[1])
            entries[current] = []
        elif current is not None and line.strip().startswith("--hash=sha256:"):
            entries[current].append(line.strip().rstrip(" \\"))
    return entries


def test_the_dev_lock_holds_every_pin_of_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = pins([*project["dependencies"], *project["optional-dependencies"]["dev"]])
    locked = pins(DEV_LOCK.read_text().splitlines())
    assert {name: locked.get(name) for name in wanted} == wanted


@pytest.mark.parametrize(("lock", "inputs"), LOCKS.items())
def test_each_layer_lock_holds_its_inputs_pins(lock: str, inputs: tuple[str, ...]) -> None:
    wanted = {
        k: v for name in inputs for k, v in pins((LAYERS / name).read_text().splitlines()).items()
    }
    locked = pins((LAYERS / lock).read_text().splitlines())
    assert {name: locked.get(name) for name in wanted} == wanted


def test_the_local_variant_adds_the_projects_boto3() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert pins((LAYERS / "local.txt").read_text().splitlines()) == {
        "boto3": pins(project["dependencies"])["boto3"]
    }


@pytest.mark.parametrize("lock", [DEV_LOCK, *(LAYERS / name for name in LOCKS)], ids=str)
def test_every_locked_requirement_has_hashes(lock: Path) -> None:
    entries = requirements(lock)
    assert entries
    assert [name for name, hashes in entries.items() if not hashes] == []


def test_a_layer_build_refuses_a_file_whose_hash_is_not_in_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "tampered.lock"
    lock.write_text("idna==3.20 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    built = subprocess.run(
        [
            sys.executable,
            str(ROOT / "layers" / "build_layer.py"),
            "deps",
            "--requirements",
            str(lock),
            "--flavour",
            "onnx",
            "--out",
            str(tmp_path / "layer"),
            "--python-version",
            "3.13",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode != 0
    assert "DO NOT MATCH THE HASHES" in built.stderr
