"""publish --promote ALIAS: publish a version and point an alias at it in one command."""

from __future__ import annotations

import json
from pathlib import Path

from model_store.artifact import Artifact
from tests.support.cli import ok, run


def test_publish_then_promote_in_one_command(tmp_path: Path, artifact_dir: Path) -> None:
    env = {"MODEL_STORE_REGISTRY": str(tmp_path / "registry")}

    human = ok("publish", str(artifact_dir), "--version", "1", "--promote", "staging", env=env)

    assert "published iris@1" in human
    assert human.rstrip().endswith("iris@staging now points at 1")
    assert "next: model-store promote" not in human
    assert json.loads(ok("list", "--json", env=env)) == [
        {"name": "iris", "versions": 1, "aliases": {"staging": "1"}}
    ]
    events = json.loads(ok("history", "iris", "--alias", "staging", "--json", env=env))
    assert [(e["action"], e["version"]) for e in events] == [("promote", "1")]


def test_publish_promote_as_json_and_moving_an_alias(
    tmp_path: Path, artifact_dir: Path, iris_artifact_2: Artifact
) -> None:
    env = {"MODEL_STORE_REGISTRY": str(tmp_path / "registry")}
    ok("publish", str(artifact_dir), "--version", "1", "--promote", "production", env=env)
    second = iris_artifact_2.write(tmp_path / "second")

    printed = json.loads(
        ok("publish", str(second), "--version", "2", "--promote", "production", "--json", env=env)
    )

    assert (printed["version"], printed["promoted"]) == ("2", "production")
    assert json.loads(ok("show", "iris", "--json", env=env))["version"] == "2"
    assert "rolled back to 1" in ok("rollback", "iris", env=env)


def test_publish_without_promote_says_what_comes_next(tmp_path: Path, artifact_dir: Path) -> None:
    registry = tmp_path / "registry"
    result = run("publish", str(artifact_dir), "--version", "1", "--registry", str(registry))
    assert result.returncode == 0, result.stderr
    assert f"next: model-store promote iris 1 --registry {registry}" in result.stdout
    assert (
        json.loads(
            ok(
                "publish",
                str(artifact_dir),
                "--version",
                "2",
                "--json",
                "--registry",
                str(registry),
            )
        )["promoted"]
        is None
    )
