"""The model_store layer ships what the functions import and nothing of the tools.

The functions' imports are read statically (every import statement that can run, lazy
ones inside functions included; those under TYPE_CHECKING never run) and followed
through model_store; the layer is built for real by its Makefile, as sam build runs it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FUNCTIONS = [
    ROOT / "functions/predict_api/predict_api",
    ROOT / "functions/batch_scoring/batch_scoring",
]
PACKAGE = "model_store"


def _imports(path: Path, module: str) -> set[str]:
    """Modules an import statement in PATH (the module MODULE) can load at run time."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for statement in child.orelse:
                    visit(statement)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - child.level + 1])
                    source = f"{base}.{child.module}" if child.module else base
                else:
                    source = child.module or ""
                found.add(source)
                # `from package import name` may load the submodule `name`.
                found.update(f"{source}.{alias.name}" for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {name for name in found if name == PACKAGE or name.startswith(f"{PACKAGE}.")}


def _source_of(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def functions_import() -> set[str]:
    """Every model_store module the functions can load, followed transitively."""
    pending = {
        name for folder in FUNCTIONS for f in folder.rglob("*.py") for name in _imports(f, "")
    }
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        parts = name.split(".")
        for end in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
            module = ".".join(parts[:end])
            source = _source_of(module)
            if module in seen or source is None:
                continue
            seen.add(module)
            pending |= _imports(source, module)
    return seen


def shipped(site: Path) -> set[str]:
    modules = set()
    for path in (site / PACKAGE).rglob("*.py"):
        parts = list(path.relative_to(site).with_suffix("").parts)
        modules.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def every_module() -> set[str]:
    return shipped(ROOT)


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model_store_layer")
    subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(ROOT / PACKAGE),
            "-f",
            str(ROOT / "layers/model_store/Makefile"),
            "build-ModelStoreLayer",
            f"ARTIFACTS_DIR={out}",
            f"PYTHON={sys.executable}",
        ],
        check=True,
        capture_output=True,
    )
    return out / "python"


def test_the_reading_sees_lazy_and_relative_imports_and_skips_type_checking_ones(
    tmp_path: Path,
) -> None:
    source = tmp_path / "engine.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from model_store.batch.report import BatchReport\n"
        "from .sinks import Sink\n"
        "if TYPE_CHECKING:\n"
        "    from model_store.training import SearchResult\n"
        "def render():\n"
        "    from model_store.batch import html_report\n"
    )
    assert _imports(source, "model_store.batch.engine") == {
        "model_store.batch.report",
        "model_store.batch.report.BatchReport",
        "model_store.batch.sinks",
        "model_store.batch.sinks.Sink",
        "model_store.batch",
        "model_store.batch.html_report",
    }


def test_the_layer_holds_every_module_the_functions_import(layer: Path) -> None:
    missing = functions_import() - shipped(layer)
    assert not missing, f"the functions import modules the layer leaves out: {sorted(missing)}"


def test_the_layer_leaves_the_tools_out(layer: Path) -> None:
    left_out = every_module() - shipped(layer)
    tools = {
        "model_store.cli",
        "model_store.training",
        "model_store.apikeys",
        "model_store.onnx_conversion",
        "model_store.onnx_svc",
    }
    assert tools <= left_out
    assert not left_out & functions_import()
    assert not (layer / PACKAGE / "cli").exists()  # not even its bytecode
    assert not (layer / PACKAGE / "training").exists()
