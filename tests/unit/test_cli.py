"""The model-store CLI as a user runs it: real subprocesses, real exit codes and output."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import boto3
import pytest

from model_store.artifact import Artifact
from tests.support.cli import assert_clean_error, ok, run, run_script


@pytest.mark.slow
def test_train_on_iris_compares_six_algorithms_and_picks_an_accurate_best(tmp_path: Path) -> None:
    out = tmp_path / "artifact"
    result = run_script("train", "--out", str(out), "--jobs", "-1")
    assert result.returncode == 0, result.stderr
    human = result.stdout
    for algorithm in (
        "knn",
        "svc",
        "logistic_regression",
        "random_forest",
        "decision_tree",
        "naive_bayes",
    ):
        assert algorithm in human
    manifest = Artifact.read(out).manifest
    assert manifest.metrics.test_accuracy >= 0.93
    assert manifest.target.classes == ["setosa", "versicolor", "virginica"]
    assert f"* {manifest.algorithm}" in human  # the table marks the chosen one
    # The iris best converts, and the table says how each candidate's ONNX form fared.
    assert "onnx 1 row ms" in human
    assert "onnx parity" in human
    assert manifest.onnx is not None
    assert manifest.onnx.proof.label_agreement == 1.0
    assert (out / "model.onnx").is_file()
    assert "ONNX form: " in human


def test_train_json_lists_every_candidate_with_its_costs(tmp_path: Path) -> None:
    out = tmp_path / "a"
    data = json.loads(
        ok(
            "train",
            "--out",
            str(out),
            "--algorithms",
            "naive_bayes,decision_tree",
            "--cv",
            "3",
            "--json",
        )
    )
    assert {c["algorithm"] for c in data["candidates"]} == {"naive_bayes", "decision_tree"}
    for candidate in data["candidates"]:
        assert candidate["size_compressed"] > 0
        assert candidate["size_uncompressed"] >= candidate["size_compressed"]
        assert candidate["load_ms"] > 0
        assert candidate["predict_one_ms"] > 0
        # Both convert (the tree through its float32 classifier graph): figures, no reason.
        assert candidate["onnx_predict_one_ms"] > 0
        assert candidate["onnx_parity"]["label_agreement"] == 1.0
        assert candidate["onnx_parity"]["max_probability_diff"] <= 1e-5
        assert candidate["onnx_refused"] is None
    assert data["best"] == Artifact.read(out).manifest.algorithm


def test_train_on_a_user_csv_with_a_target_column(tmp_path: Path) -> None:
    csv_path = tmp_path / "flowers.csv"
    rows = ["a,b,kind"] + [f"{i % 7},{(i * 3) % 5},{'x' if i % 2 else 'y'}" for i in range(40)]
    csv_path.write_text("\n".join(rows) + "\n")
    ok(
        "train",
        "--data",
        str(csv_path),
        "--target",
        "kind",
        "--out",
        str(tmp_path / "o"),
        "--algorithms",
        "decision_tree",
        "--cv",
        "3",
    )
    manifest = Artifact.read(tmp_path / "o").manifest
    assert manifest.name == "flowers"
    assert manifest.feature_names == ["a", "b"]
    assert manifest.target.classes == ["x", "y"]


def test_train_rejects_bad_csvs_with_one_clear_line(tmp_path: Path) -> None:
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("a,b\n1,2\n")
    assert_clean_error(
        run("train", "--data", str(csv_path), "--target", "kind", "--out", str(tmp_path / "o")),
        1,
        "no target column 'kind'",
    )
    csv_path.write_text("a,kind\n1,x\nfoo,y\n")
    assert_clean_error(
        run("train", "--data", str(csv_path), "--target", "kind", "--out", str(tmp_path / "o")),
        1,
        "'foo' is not a number",
    )
    assert_clean_error(
        run("train", "--data", str(csv_path), "--out", str(tmp_path / "o")), 2, "--target"
    )
    assert not (tmp_path / "o").exists()


def test_registry_commands_need_a_registry(artifact_dir: Path) -> None:
    assert_clean_error(run_script("publish", str(artifact_dir)), 2, "MODEL_STORE_REGISTRY")


def test_publish_list_show_promote_rollback_history_on_a_directory(
    tmp_path: Path, artifact_dir: Path
) -> None:
    env = {"MODEL_STORE_REGISTRY": str(tmp_path / "registry")}
    assert "published iris@1" in ok("publish", str(artifact_dir), "--version", "1", env=env)
    assert_clean_error(
        run("publish", str(artifact_dir), "--version", "1", env=env), 1, "already exists"
    )
    default = json.loads(ok("publish", str(artifact_dir), "--json", env=env))["version"]
    assert default[:8].isdigit()
    assert default.endswith(Artifact.read(artifact_dir).manifest.sha256[:8])

    assert "now points at 1" in ok("promote", "iris", "1", env=env)
    assert f"now points at {default}" in ok("promote", "iris", default, env=env)
    listed = json.loads(ok("list", "iris", "--json", env=env))
    assert [row["version"] for row in listed] == ["1", default]
    assert listed[1]["aliases"] == ["production"]
    assert json.loads(ok("list", "--json", env=env)) == [
        {"name": "iris", "versions": 2, "aliases": {"production": default}}
    ]
    assert json.loads(ok("show", "iris", "--json", env=env))["version"] == default
    assert json.loads(ok("show", "iris@1", "--json", env=env))["version"] == "1"
    assert "sepal_length" in ok("show", "iris@production", env=env)

    assert "rolled back to 1" in ok("rollback", "iris", env=env)
    events = json.loads(ok("history", "iris", "--json", env=env))
    assert [(e["action"], e["version"]) for e in events] == [
        ("promote", "1"),
        ("promote", default),
        ("rollback", "1"),
    ]
    assert_clean_error(run("rollback", "iris", env=env), 1, "no earlier promotion")
    assert_clean_error(run("show", "iris@nope", env=env), 1, "neither a version nor an alias")
    assert_clean_error(run("promote", "iris", "9", env=env), 1, "no version '9'")
    assert_clean_error(run("list", "ghost", env=env), 1, "no model named 'ghost'")


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
def test_full_cycle_against_a_moto_server_over_http(
    moto_endpoint: str, artifact_dir: Path, tmp_path: Path, iris_artifact_2: Artifact
) -> None:
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    env = {"AWS_ENDPOINT_URL_S3": moto_endpoint, "MODEL_STORE_REGISTRY": f"s3://{bucket}/registry"}
    second = iris_artifact_2.write(tmp_path / "second")
    ok("publish", str(artifact_dir), "--version", "v1", env=env)
    ok("publish", str(second), "--version", "v2", env=env)
    ok("promote", "iris", "v1", env=env)
    ok("promote", "iris", "v2", env=env)
    assert json.loads(ok("show", "iris", "--json", env=env))["algorithm"] == "decision_tree"
    ok("rollback", "iris", env=env)
    shown = json.loads(ok("show", "iris@production", "--json", env=env))
    assert shown["version"] == "v1"
    assert shown["algorithm"] == "logistic_regression"
    keys = {
        o["Key"]
        for o in boto3.client("s3", endpoint_url=moto_endpoint)
        .list_objects_v2(Bucket=bucket)
        .get("Contents", [])
    }
    assert {
        "registry/models/iris/v1/model.joblib",
        "registry/models/iris/v1/manifest.json",
        "registry/models/iris/v2/model.joblib",
        "registry/models/iris/v2/manifest.json",
        "registry/models/iris/aliases/production.json",
    } <= keys


def test_s3_failures_are_one_line_errors(moto_endpoint: str, artifact_dir: Path) -> None:
    env = {"AWS_ENDPOINT_URL_S3": moto_endpoint, "MODEL_STORE_REGISTRY": "s3://no-such-bucket-x/r"}
    assert_clean_error(run("publish", str(artifact_dir), env=env), 1, "NoSuchBucket")
    assert_clean_error(run("list", env=env), 1, "s3://no-such-bucket-x/r")


# -- ONNX forms ----------------------------------------------------------------------------


def _schema_1(artifact_dir: Path, out: Path) -> Path:
    """ARTIFACT_DIR as `model-store train` wrote it before ONNX forms existed."""
    artifact = Artifact.read(artifact_dir)
    raw = json.loads(artifact.manifest.to_json())
    raw["schema_version"] = 1
    del raw["onnx"], raw["onnx_refused"]
    out.mkdir()
    (out / "model.joblib").write_bytes(artifact.model_bytes)
    (out / "manifest.json").write_text(json.dumps(raw))
    return out


def test_publish_adds_an_onnx_form_to_an_artifact_made_before_them(
    tmp_path: Path, artifact_dir: Path
) -> None:
    env = {"MODEL_STORE_REGISTRY": str(tmp_path / "registry")}
    old = _schema_1(artifact_dir, tmp_path / "old")

    result = run("publish", str(old), "--version", "1", env=env)

    assert result.returncode == 0, result.stderr
    assert "converting and proving it" in result.stderr
    assert "ONNX form: float64 graph, proven with ONNX Runtime" in result.stdout
    shown = json.loads(ok("show", "iris@1", "--json", env=env))
    assert shown["schema_version"] == 2
    assert shown["onnx"]["proof"]["label_agreement"] == 1.0
    assert shown["sha256"] == Artifact.read(artifact_dir).manifest.sha256  # same joblib bytes
    assert (tmp_path / "registry/models/iris/1/model.onnx").is_file()


def test_add_onnx_publishes_the_same_model_with_a_form_and_promote_warns_without_one(
    tmp_path: Path, artifact_dir: Path
) -> None:
    registry = tmp_path / "registry"
    env = {"MODEL_STORE_REGISTRY": str(registry)}
    ok("publish", str(artifact_dir), "--version", "1", env=env)
    # Version 1 as published before ONNX forms existed: no model.onnx, schema 1.
    manifest_path = registry / "models/iris/1/manifest.json"
    raw = json.loads(manifest_path.read_text())
    raw["schema_version"] = 1
    del raw["onnx"], raw["onnx_refused"]
    manifest_path.write_text(json.dumps(raw))
    (registry / "models/iris/1/model.onnx").unlink()

    promoted = run("promote", "iris", "1", env=env)
    assert promoted.returncode == 0
    assert "now points at 1" in promoted.stdout
    warning = promoted.stderr.strip()
    assert warning.startswith("warning: iris@1 has no ONNX form")
    assert "published before ONNX forms existed" in warning
    assert "model-store add-onnx iris@1" in warning

    added = json.loads(ok("add-onnx", "iris", "--json", env=env))
    assert (added["version"], added["from_version"], added["added"]) == ("1-onnx", "1", True)
    converted = Artifact.read(registry / "models/iris/1-onnx")
    assert converted.model_bytes == (registry / "models/iris/1/model.joblib").read_bytes()
    assert converted.manifest.onnx is not None
    assert converted.manifest.onnx.proof.rows.keys() == {"edges", "generated"}

    promoted = run("promote", "iris", "1-onnx", env=env)
    assert promoted.returncode == 0
    assert promoted.stderr == ""
    # Asking again changes nothing.
    again = ok("add-onnx", "iris@1-onnx", env=env)
    assert "already has an ONNX form" in again
    assert_clean_error(run("add-onnx", "iris@1", env=env), 1, "version 1-onnx already exists")


def test_add_onnx_proves_on_training_data_when_given(tmp_path: Path, artifact_dir: Path) -> None:
    env = {"MODEL_STORE_REGISTRY": str(tmp_path / "registry")}
    ok("publish", str(_schema_1(artifact_dir, tmp_path / "old")), "--version", "1", env=env)
    data = tmp_path / "iris.csv"
    from model_store.training import load_iris_dataset

    iris = load_iris_dataset()
    lines = [",".join([*iris.feature_names, "species"])]
    lines += [
        ",".join([*map(str, row), label])
        for row, label in zip(iris.features.tolist(), iris.labels, strict=True)
    ]
    data.write_text("\n".join(lines) + "\n")
    # Version 1 already has its form (publish added it); a pinned copy without one:
    raw_dir = tmp_path / "registry/models/iris/1"
    raw = json.loads((raw_dir / "manifest.json").read_text())
    raw.update(onnx=None, onnx_refused=None)
    (raw_dir / "manifest.json").write_text(json.dumps(raw))

    added = json.loads(
        ok(
            "add-onnx",
            "iris@1",
            "--data",
            str(data),
            "--target",
            "species",
            "--version",
            "2",
            "--json",
            env=env,
        )
    )

    assert added["version"] == "2"
    manifest = json.loads(ok("show", "iris@2", "--json", env=env))
    assert manifest["onnx"]["proof"]["rows"]["training"] == 150
    assert_clean_error(run("add-onnx", "iris@1", "--data", str(data), env=env), 2, "--target")
