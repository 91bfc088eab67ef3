"""What the CLI imports: scikit-learn only to train or score with it, rich only to draw a
bar on a terminal, and neither ever from the functions (they never import the CLI)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from model_store.artifact import Artifact

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("sklearn", "scipy", "skl2onnx", "rich")

# main() in a fresh interpreter, then the top-level packages it left imported, on stderr.
PROBE = f"""
import json, sys
from model_store.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
finally:
    loaded = sorted({{name.split(".")[0] for name in sys.modules}} & set({HEAVY!r}))
    print("LOADED " + json.dumps(loaded), file=sys.stderr)
sys.exit(code)
"""


def loaded_by(*args: str, env: dict[str, str] | None = None) -> list[str]:
    """The heavy packages `model-store ARGS` imports, run as a user runs it (pipes, no tty)."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    marker = [line for line in result.stderr.splitlines() if line.startswith("LOADED ")]
    assert marker, result.stderr
    names: list[str] = json.loads(marker[-1].removeprefix("LOADED "))
    return names


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
def test_help_imports_no_scikit_learn() -> None:
    assert loaded_by("--help") == []
    assert loaded_by("train", "--help") == []
    assert loaded_by("--version") == []


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
def test_registry_commands_import_no_scikit_learn(
    tmp_path: Path, iris_artifact: Artifact, artifact_dir: Path
) -> None:
    registry = str(tmp_path / "registry")
    assert loaded_by("publish", str(artifact_dir), "--version", "1", "--registry", registry) == []
    assert loaded_by("promote", "iris", "1", "--registry", registry) == []
    assert loaded_by("list", "--registry", registry) == []
    assert loaded_by("list", "iris", "--registry", registry) == []
    assert loaded_by("show", "iris", "--registry", registry, "--json") == []
    assert loaded_by("history", "iris", "--registry", registry) == []


def test_a_mistake_in_train_is_found_without_scikit_learn(tmp_path: Path) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, "train", "--out", str(tmp_path), "--cv", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 2
    assert "LOADED []" in probe.stderr


@pytest.mark.parametrize("package", ["model_store.cli", "rich"])
def test_only_the_cli_imports_rich_and_nothing_else_imports_the_cli(package: str) -> None:
    importer = re.compile(rf"^\s*(from|import)\s+{re.escape(package)}\b", re.MULTILINE)
    cli = ROOT / "model_store" / "cli"
    offenders = [
        str(path.relative_to(ROOT))
        for top in ("model_store", "functions", "layers")
        for path in (ROOT / top).rglob("*.py")
        if cli not in path.parents and importer.search(path.read_text())
    ]
    assert offenders == []
