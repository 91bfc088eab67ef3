"""The CLI's surface: help on every option, options only where they mean something,
--version, and one `error:` line (never a traceback) for every mistake."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import boto3
import pytest

from model_store.artifact import Artifact
from model_store.cli import build_parser, train_cmd
from model_store.registry import open_registry
from model_store.training import ALGORITHMS
from tests.support.cli import assert_clean_error, run


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser under PARSER (itself first), with the words that reach it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


def options(command: tuple[str, ...]) -> set[str]:
    parser = dict(commands(build_parser()))[command]
    return {flag for action in parser._actions for flag in action.option_strings}


def test_every_option_and_argument_of_every_command_has_help() -> None:
    missing = []
    for path, parser in commands(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                texts = {a.dest: a.help for a in action._choices_actions}
                missing += [f"{' '.join(path)} {n}" for n, t in texts.items() if not t]
                assert set(texts) == set(action.choices), f"a command of {path} without help"
            elif not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{' '.join(path) or 'model-store'} {action.dest}")
    assert missing == []


@pytest.mark.parametrize(
    "command", [("train",), ("keys", "create"), ("keys", "list"), ("keys", "revoke")]
)
def test_commands_that_use_no_registry_do_not_offer_one(command: tuple[str, ...]) -> None:
    assert "--registry" not in options(command)
    assert "--json" in options(command)


@pytest.mark.parametrize(
    "command",
    [
        ("publish",),
        ("add-onnx",),
        ("list",),
        ("show",),
        ("promote",),
        ("rollback",),
        ("history",),
        ("sign",),
        ("verify",),
        ("score",),
    ],
)
def test_commands_that_use_a_registry_offer_one(command: tuple[str, ...]) -> None:
    assert "--registry" in options(command)


def test_registry_given_to_train_is_refused_with_trains_usage(tmp_path: Path) -> None:
    result = run("train", "--out", str(tmp_path / "o"), "--registry", str(tmp_path))
    assert_clean_error(result, 2, "unrecognized arguments: --registry")
    assert "usage: model-store train" in result.stderr
    assert not (tmp_path / "o").exists()


def test_version_is_the_installed_package_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"model-store {version('sklearn-serverless')}"


def test_the_cli_names_the_algorithms_training_has() -> None:
    """The CLI keeps its own copy (parsing imports no scikit-learn): the two stay equal."""
    assert train_cmd.ALGORITHMS == ALGORITHMS


# -- mistakes: exit 2 for a command line that cannot run, before any work -----------------


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--algorithms", "svm"], "unknown algorithm 'svm'; choose from knn, svc"),
        (["--algorithms", " , "], "no algorithm; choose from"),
        (["--cv", "1"], "argument --cv: 1 is out of range: use 2 or more"),
        (["--cv", "five"], "argument --cv: 'five' is not a whole number"),
        (["--test-size", "1.5"], "argument --test-size: 1.5 is out of range"),
        (["--test-size", "0"], "argument --test-size: 0 is out of range"),
        (["--test-size", "nan"], "argument --test-size: nan is out of range"),
        (["--jobs", "0"], "argument --jobs: 0 runs nothing"),
        (["--seed", "-1"], "argument --seed: -1 is out of range: use 0 to 4294967295"),
        (["--compress", "10"], "argument --compress: 10 is out of range: use 0 to 9"),
        (["--name", "a/b"], "argument --name: invalid model name 'a/b'"),
        (["--target", "species"], "--target names a column of --data: pass --data too"),
        (["--data", "no-such.csv", "--target", "y"], "no-such.csv is not a file"),
        (["--cv", "500", "--algorithms", "naive_bayes"], "--cv 500 needs at least 500 training"),
    ],
)
def test_train_refuses_bad_values_before_training(
    tmp_path: Path, args: list[str], text: str
) -> None:
    out = tmp_path / "out"
    assert_clean_error(run("train", "--out", str(out), *args), 2, text)
    assert not out.exists()


def test_train_refuses_an_out_it_cannot_write_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_clean_error(run("train", "--out", str(blocker / "artifact")), 2, f"{blocker} is not one")


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--chunk-rows", "0"], "argument --chunk-rows: 0 is out of range: use 1 or more"),
        (["--drift-threshold", "-1"], "argument --drift-threshold: -1 is out of range"),
        (["--runtime", "tensorflow"], "argument --runtime: invalid choice: 'tensorflow'"),
        (["--model", "no/such/dir"], "no/such/dir is not a directory"),
    ],
)
def test_score_refuses_bad_values(
    tmp_path: Path, artifact_dir: Path, args: list[str], text: str
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("a\n1\n")
    defaults = ["--model", str(artifact_dir), "--out", str(tmp_path / "out")]
    assert_clean_error(run("score", str(source), *defaults, *args), 2, text)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["publish", "no-such-dir"], "no-such-dir is not a directory"),
        (["publish", "ARTIFACT", "--version", "a/b"], "argument --version: invalid version"),
        (["publish", "ARTIFACT", "--promote", "Prod"], "argument --promote: invalid alias"),
        (["promote", "iris", "1", "--alias", "no/pe"], "argument --alias: invalid alias"),
        (["list", "--registry", "FILE"], "is not a directory"),
        (["show"], "the following arguments are required: NAME[@VERSION|@ALIAS]"),
        ([], "the following arguments are required: COMMAND"),
        (["keys"], "the following arguments are required: ACTION"),
        (["nosuch"], "argument COMMAND: invalid choice: 'nosuch'"),
    ],
)
def test_registry_command_mistakes(
    tmp_path: Path, artifact_dir: Path, args: list[str], text: str
) -> None:
    registry = tmp_path / "registry"
    (tmp_path / "file").write_text("")
    args = [{"ARTIFACT": str(artifact_dir), "FILE": str(tmp_path / "file")}.get(a, a) for a in args]
    result = run(*args, env={"MODEL_STORE_REGISTRY": str(registry)})
    assert_clean_error(result, 2, text)
    assert not registry.exists()


# -- one wording for one fact ------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["list", "ghost"],
        ["show", "ghost"],
        ["show", "ghost@1"],
        ["promote", "ghost", "1"],
        ["rollback", "ghost"],
        ["history", "ghost"],
        ["add-onnx", "ghost"],
        ["verify", "ghost", "--key", "arn:aws:kms:us-east-1:111122223333:key/x"],
        ["sign", "ghost", "--sign-key", "alias/x"],
        ["score", "IN", "--model", "ghost", "--out", "OUT"],
    ],
)
def test_every_command_says_no_model_the_same_way(
    tmp_path: Path, iris_artifact: Artifact, args: list[str]
) -> None:
    registry = tmp_path / "registry"
    open_registry(registry).publish(iris_artifact, name="iris", version="1")
    (tmp_path / "in.csv").write_text("a\n1\n")
    paths = {"IN": str(tmp_path / "in.csv"), "OUT": str(tmp_path / "out")}
    result = run(*[paths.get(a, a) for a in args], env={"MODEL_STORE_REGISTRY": str(registry)})
    assert_clean_error(result, 1, f"no model named 'ghost' in {registry}")


def test_file_system_failures_are_one_line(tmp_path: Path, artifact_dir: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n")
    out = tmp_path / "out"
    (out / "in.predictions.csv").mkdir(parents=True)  # where a file is to be written
    result = run("score", str(source), "--model", str(artifact_dir), "--out", str(out))
    assert_clean_error(result, 1, f"{out / 'in.predictions.csv'}: Is a directory")


# -- options that would do nothing -------------------------------------------------------


def test_score_warns_that_registry_is_unused_with_an_artifact_directory(
    tmp_path: Path, artifact_dir: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n")
    result = run(
        "score",
        str(source),
        "--model",
        str(artifact_dir),
        "--out",
        str(tmp_path / "out"),
        "--registry",
        str(tmp_path / "registry"),
    )
    assert result.returncode == 0, result.stderr
    assert (
        f"warning: --registry is not used: --model {artifact_dir} is an artifact directory"
        in result.stderr
    )


def test_keys_warns_that_stack_is_unused_with_a_usage_plan(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    plan = boto3.client("apigateway").create_usage_plan(name="plan")["id"]
    result = run("keys", "list", "--usage-plan", plan, "--stack", "mine")
    assert result.returncode == 0, result.stderr
    assert (
        result.stderr == f"warning: --stack mine is not used: --usage-plan {plan} names the plan\n"
    )


def test_sdk_failures_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    assert_clean_error(
        run("keys", "list", "--stack", "s"), 1, "set AWS_REGION or AWS_DEFAULT_REGION"
    )
