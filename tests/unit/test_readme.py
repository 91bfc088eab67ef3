"""The README's commands, read as a new user runs them top to bottom."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path
from urllib.parse import unquote_plus

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_the_batch_invoke_example_uploads_the_object_its_event_names_first() -> None:
    record = json.loads((ROOT / "events" / "s3_put.json").read_text())["Records"][0]["s3"]
    key = unquote_plus(record["object"]["key"])
    bucket = record["bucket"]["name"]
    invoke = README.index("make invoke FUNCTION=BatchScoringFunction EVENT=events/s3_put.json")
    upload = README.rfind(f"s3://{bucket}/{key}", 0, invoke)
    assert upload != -1, f"no upload of s3://{bucket}/{key} before the batch make invoke"
    assert "s3 cp" in README[README.rfind("aws", 0, upload) : upload]


def test_make_clean_removes_what_the_readmes_commands_write() -> None:
    written = set(re.findall(r"--out (\w+)", README))
    assert written, "the README no longer writes anything with --out"
    planned = subprocess.run(
        ["make", "-n", "--no-print-directory", "clean"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    removed = set(planned.replace("\\\n", " ").split())
    assert written <= removed, written - removed
    ignored = set((ROOT / ".gitignore").read_text().split())
    assert {f"{name}/" for name in written} <= ignored


def test_the_cli_examples_run_in_the_order_written(
    tmp_path: Path, artifact_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The registry commands of the CLI section, as written, against a local registry (the
    # training lines are covered by the CLI's own tests; their artifact is the fixture's).
    from tests.support.cli import run

    section = README[README.index("## The `model-store` command line") :]
    block = section[
        section.index("```sh") + len("```sh") : section.index("```", section.index("```sh") + 5)
    ]
    commands = [
        shlex.split(line.split("#", 1)[0])
        for line in block.splitlines()
        if line.startswith("model-store ") and not line.startswith(("model-store train",))
    ]
    assert len(commands) >= 10
    monkeypatch.chdir(artifact_dir.parent)
    registry = str(tmp_path / "registry")
    for command in commands:
        if command[1] == "add-onnx":
            continue  # for models published before ONNX forms: these have one
        result = run(*command[1:], env={"MODEL_STORE_REGISTRY": registry})
        assert result.returncode == 0, (command, result.stderr)
    # The rollback came after a second promotion: production is back on 1.
    shown = run("show", "iris", env={"MODEL_STORE_REGISTRY": registry}).stdout
    assert shown.startswith("iris@1\n")
