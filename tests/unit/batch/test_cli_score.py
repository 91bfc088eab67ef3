"""``model-store score INPUT.csv --model ... --out DIR``: the batch engine from the CLI."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from model_store.artifact import Artifact
from model_store.cli import main
from model_store.registry import open_registry
from tests.support.batch_files import (
    ERRORS_HEADER,
    FEATURES,
    OUTPUT_COLUMNS,
    csv_text,
    iris_table,
    parse_csv,
)


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(*args: str, stderr: io.StringIO | None = None) -> Run:
    """main() in this process, with the exit status argparse or the handler gives."""
    out, err = io.StringIO(), stderr or io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
    return Run(code, out.getvalue(), err.getvalue())


@pytest.fixture
def iris_csv(tmp_path: Path) -> Path:
    table = iris_table()
    path = tmp_path / "iris.csv"
    path.write_text(csv_text(table.header, [*table.rows, ["bad", "1", "x", "1", "1"]]))
    return path


def test_scoring_with_an_artifact_directory(
    iris_csv: Path, artifact_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"

    result = _run("score", str(iris_csv), "--model", str(artifact_dir), "--out", str(out))

    assert result.code == 0, result.err
    assert sorted(p.name for p in out.iterdir()) == [
        "iris.errors.csv",
        "iris.predictions.csv",
        "iris.report.html",
        "iris.report.json",
    ]
    assert result.out.startswith(f"succeeded: {iris_csv} with iris@local (onnx runtime)\n")
    assert "rows in 151, scored 150, failed 1" in result.out
    assert "line 152: sepal_width: 'x' is not a number" in result.out
    assert f"predictions: {out / 'iris.predictions.csv'}" in result.out
    predictions = parse_csv((out / "iris.predictions.csv").read_text())
    assert predictions[0] == ["id", *FEATURES, *OUTPUT_COLUMNS]
    assert len(predictions) == 151
    assert (out / "iris.errors.csv").read_text().startswith(ERRORS_HEADER)
    report = json.loads((out / "iris.report.json").read_text())
    assert (report["status"], report["rows_in"], report["rows_failed"]) == ("succeeded", 151, 1)


def test_both_runtimes_score_alike(iris_csv: Path, artifact_dir: Path, tmp_path: Path) -> None:
    """Same rows, labels, columns and errors; probabilities within the proof's tolerance."""
    outputs = {}
    for runtime in ("onnx", "sklearn"):
        out = tmp_path / runtime
        args = ["--model", str(artifact_dir), "--out", str(out), "--runtime", runtime]
        result = _run("score", str(iris_csv), *args)
        assert result.code == 0, result.err
        assert f"({runtime} runtime)" in result.out
        outputs[runtime] = out
    onnx, sklearn = (parse_csv((outputs[r] / "iris.predictions.csv").read_text()) for r in outputs)
    assert len(onnx) == len(sklearn) == 151
    assert onnx[0] == sklearn[0]
    tolerance = json.loads((artifact_dir / "manifest.json").read_text())["onnx"]["proof"]
    for a, b in zip(onnx[1:], sklearn[1:], strict=True):
        assert a[:6] == b[:6]  # the input's cells and the label
        assert a[-1] == b[-1]  # source_line
        assert all(
            abs(float(x) - float(y)) <= tolerance["tolerance"]
            for x, y in zip(a[6:-1], b[6:-1], strict=True)
        )
    assert (outputs["onnx"] / "iris.errors.csv").read_text() == (
        outputs["sklearn"] / "iris.errors.csv"
    ).read_text()


def test_json_output_is_the_report(iris_csv: Path, artifact_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"

    result = _run(
        "score",
        str(iris_csv),
        "--model",
        str(artifact_dir),
        "--out",
        str(out),
        "--json",
        "--chunk-rows",
        "11",
    )

    assert result.code == 0, result.err
    printed = json.loads(result.out)
    assert printed == json.loads((out / "iris.report.json").read_text())
    assert printed["status"] == "succeeded"
    assert (printed["rows_in"], printed["rows_scored"], printed["rows_failed"]) == (151, 150, 1)
    assert printed["model"] == {"name": "iris", "version": "local"}
    assert printed["outputs"]["predictions"] == str(out / "iris.predictions.csv")
    assert printed["first_errors"] == [{"line": 152, "reason": "sepal_width: 'x' is not a number"}]


def test_a_drift_threshold_from_the_command_line_flags_drift(
    tmp_path: Path, artifact_dir: Path
) -> None:
    table = iris_table(shift=5.0)
    source = tmp_path / "shifted.csv"
    source.write_text(csv_text(table.header, table.rows))

    result = _run(
        "score",
        str(source),
        "--model",
        str(artifact_dir),
        "--out",
        str(tmp_path / "o"),
        "--drift-threshold",
        "0.5",
    )

    assert result.code == 0, result.err
    assert f"drift flagged (PSI > 0.5): {', '.join(FEATURES)}" in result.out


@pytest.mark.parametrize("model", ["iris@production", "iris", "iris@2"])
def test_scoring_with_a_model_from_a_registry(
    iris_csv: Path, iris_artifact: Artifact, iris_artifact_2: Artifact, tmp_path: Path, model: str
) -> None:
    registry_dir = tmp_path / "registry"
    registry = open_registry(registry_dir)
    registry.publish(iris_artifact, name="iris", version="1")
    registry.publish(iris_artifact_2, name="iris", version="2")
    registry.promote("iris", "2")
    out = tmp_path / "out"

    result = _run(
        "score",
        str(iris_csv),
        "--model",
        model,
        "--registry",
        str(registry_dir),
        "--out",
        str(out),
        "--json",
    )

    assert result.code == 0, result.err
    assert json.loads(result.out)["model"] == {"name": "iris", "version": "2"}
    assert (out / "iris.predictions.csv").is_file()


def test_a_registry_version_that_is_not_the_alias(
    iris_csv: Path, iris_artifact: Artifact, iris_artifact_2: Artifact, tmp_path: Path
) -> None:
    registry_dir = tmp_path / "registry"
    registry = open_registry(registry_dir)
    registry.publish(iris_artifact, name="iris", version="1")
    registry.publish(iris_artifact_2, name="iris", version="2")
    registry.promote("iris", "2")

    result = _run(
        "score",
        str(iris_csv),
        "--model",
        "iris@1",
        "--registry",
        str(registry_dir),
        "--out",
        str(tmp_path / "out"),
        "--json",
    )

    assert result.code == 0, result.err
    assert json.loads(result.out)["model"] == {"name": "iris", "version": "1"}


def test_a_rejected_file_exits_1_with_the_reason(tmp_path: Path, artifact_dir: Path) -> None:
    source = tmp_path / "partial.csv"
    source.write_text("id,sepal_length,sepal_width,petal_length\n1,2,3,4\n")
    out = tmp_path / "out"

    result = _run("score", str(source), "--model", str(artifact_dir), "--out", str(out))

    assert result.code == 1
    assert result.out.startswith(f"rejected: {source} with iris@local (onnx runtime)\n")
    assert "  reason: missing feature column(s): petal_width;" in result.out
    assert sorted(p.name for p in out.iterdir()) == ["partial.report.html", "partial.report.json"]


def test_a_missing_input_file_is_a_usage_error(tmp_path: Path, artifact_dir: Path) -> None:
    result = _run(
        "score", str(tmp_path / "nope.csv"), "--model", str(artifact_dir), "--out", str(tmp_path)
    )

    assert result.code == 2
    assert result.err.strip().splitlines()[-1] == f"error: {tmp_path / 'nope.csv'} is not a file"


def test_a_registry_model_without_a_registry_is_a_usage_error(
    iris_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODEL_STORE_REGISTRY", raising=False)

    result = _run("score", str(iris_csv), "--model", "iris", "--out", str(tmp_path / "out"))

    assert result.code == 2
    assert "no registry" in result.err
    assert not (tmp_path / "out").exists()


def test_an_unknown_model_in_the_registry_exits_1(iris_csv: Path, tmp_path: Path) -> None:
    registry_dir = tmp_path / "registry"
    registry_dir.mkdir()

    result = _run(
        "score",
        str(iris_csv),
        "--model",
        "ghost",
        "--registry",
        str(registry_dir),
        "--out",
        str(tmp_path / "out"),
    )

    assert result.code == 1
    assert result.err.startswith("error: ")
    assert "ghost" in result.err
    assert "Traceback" not in result.err


def test_progress_is_shown_on_a_terminal(tmp_path: Path, artifact_dir: Path) -> None:
    source = tmp_path / "long.csv"
    row = "5.1,3.5,1.4,0.2\n"
    source.write_text(",".join(FEATURES) + "\n" + row * 99_999)  # line 100,000 is a row
    terminal = _Terminal()

    result = _run(
        "score",
        str(source),
        "--model",
        str(artifact_dir),
        "--out",
        str(tmp_path / "o"),
        stderr=terminal,
    )

    assert result.code == 0, result.err
    assert "100,000 lines read" in result.err
    assert result.err.endswith("\n")


def test_raw_cells_keeps_formulas_as_they_came(artifact_dir: Path, tmp_path: Path) -> None:
    table = iris_table()
    source = tmp_path / "formulas.csv"
    source.write_text(csv_text(table.header, [["=1+1", *table.rows[0][1:]]]))
    for flags, expected in [((), "'=1+1"), (("--raw-cells",), "=1+1")]:
        out = tmp_path / f"out{len(flags)}"
        result = _run("score", str(source), "--model", str(artifact_dir), "--out", str(out), *flags)
        assert result.code == 0, result.err
        predicted = parse_csv((out / "formulas.predictions.csv").read_text())
        assert predicted[1][0] == expected
