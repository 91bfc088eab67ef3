"""CSV datasets with clear errors, training, the artifact's manifest, and drift statistics."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np
import pytest

from model_store import TrainingDataError
from model_store.artifact import sha256_hex
from model_store.drift import bin_counts, feature_stats, population_stability_index
from model_store.training import (
    ALGORITHMS,
    build_artifact,
    load_csv_dataset,
    load_iris_dataset,
    train,
)

HEADER = ["a", "b", "label", "c"]


def _rows(n: int, *, classes: int = 2) -> list[list[str]]:
    return [[f"{i}.5", str(i * 2), f"k{i % classes}", str(-i)] for i in range(n)]


def _write(
    path: Path, rows: list[list[str]], header: list[str] = HEADER, bom: bool = False
) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(("\ufeff" if bom else "") + buffer.getvalue(), encoding="utf-8")
    return path


def _error(path: Path, target: str = "label") -> str:
    with pytest.raises(TrainingDataError) as excinfo:
        load_csv_dataset(path, target)
    return str(excinfo.value)


# -- CSV errors -----------------------------------------------------------------------------


def test_valid_csv_loads(tmp_path: Path) -> None:
    dataset = load_csv_dataset(_write(tmp_path / "d.csv", _rows(12)), "label")
    assert dataset.feature_names == ["a", "b", "c"]
    assert dataset.target_name == "label"
    assert dataset.features.shape == (12, 3)
    assert dataset.features[3].tolist() == [3.5, 6.0, -3.0]
    assert dataset.labels.tolist()[:3] == ["k0", "k1", "k0"]


def test_missing_target_lists_columns(tmp_path: Path) -> None:
    message = _error(_write(tmp_path / "d.csv", _rows(12)), target="species")
    assert "'species'" in message
    assert "a, b, label, c" in message


def test_non_numeric_feature_names_line_and_column(tmp_path: Path) -> None:
    rows = _rows(12)
    rows[2][1] = "seven"  # header is line 1, so the third data row is line 4
    message = _error(_write(tmp_path / "d.csv", rows))
    assert "line 4" in message
    assert "'b'" in message
    assert "seven" in message


@pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "-inf"])
def test_non_finite_value(tmp_path: Path, bad: str) -> None:
    rows = _rows(12)
    rows[5][3] = bad
    message = _error(_write(tmp_path / "d.csv", rows))
    assert "line 7" in message
    assert "'c'" in message
    assert "finite" in message


def test_empty_cell(tmp_path: Path) -> None:
    rows = _rows(12)
    rows[0][0] = ""
    message = _error(_write(tmp_path / "d.csv", rows))
    assert "line 2" in message
    assert "'a'" in message


def test_too_few_rows(tmp_path: Path) -> None:
    message = _error(_write(tmp_path / "d.csv", _rows(9)))
    assert "9 data rows" in message
    assert "10" in message
    # Ten is enough.
    assert load_csv_dataset(_write(tmp_path / "ok.csv", _rows(10)), "label").features.shape[0] == 10


def test_single_class(tmp_path: Path) -> None:
    message = _error(_write(tmp_path / "d.csv", _rows(12, classes=1)))
    assert "single class" in message
    assert "'label'" in message


@pytest.mark.parametrize("content", ["", "\ufeff", "\n\n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "d.csv"
    path.write_text(content, encoding="utf-8")
    message = _error(path)
    assert "empty" in message
    assert str(path) in message


def test_missing_file(tmp_path: Path) -> None:
    message = _error(tmp_path / "absent.csv")
    assert "absent.csv" in message


def test_ragged_row(tmp_path: Path) -> None:
    rows = _rows(12)
    rows[1].append("9")
    message = _error(_write(tmp_path / "d.csv", rows))
    assert "line 3" in message
    assert "5 fields" in message


# -- a CSV with a BOM through training and build_artifact ------------------------------------


def test_bom_csv_trains_and_builds_a_manifest(tmp_path: Path) -> None:
    iris = load_iris_dataset()
    # Target in the middle, features in an order unlike iris's, numeric class labels.
    header = ["petal_width", "sepal_length", "kind", "petal_length", "sepal_width"]
    source = {name: iris.feature_names.index(name) for name in header if name != "kind"}
    codes = {"setosa": "0", "versicolor": "1", "virginica": "2"}
    rows = [
        [
            codes[str(label)] if name == "kind" else repr(float(features[source[name]]))
            for name in header
        ]
        for features, label in zip(iris.features, iris.labels, strict=True)
    ]
    path = _write(tmp_path / "flowers.csv", rows, header=header, bom=True)
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")

    dataset = load_csv_dataset(path, "kind")
    assert dataset.feature_names == ["petal_width", "sepal_length", "petal_length", "sepal_width"]

    result = train(dataset, algorithms=("naive_bayes",), cv_folds=3)
    assert [c.algorithm for c in result.candidates] == ["naive_bayes"]
    artifact = build_artifact(result, name="flowers")
    manifest = artifact.manifest

    assert manifest.name == "flowers"
    assert manifest.algorithm == "naive_bayes"
    assert manifest.feature_names == dataset.feature_names
    assert manifest.target.name == "kind"
    assert manifest.target.classes == ["0", "1", "2"]
    assert all(isinstance(c, str) for c in manifest.target.classes)
    assert manifest.sha256 == sha256_hex(artifact.model_bytes)
    assert manifest.size_bytes == len(artifact.model_bytes)
    assert manifest.training_data_sha256 == dataset.sha256
    assert manifest.metrics.train_rows + manifest.metrics.test_rows == 150
    assert manifest.metrics.cv_folds == 3
    assert 0.8 <= manifest.metrics.test_accuracy <= 1.0

    for j, feature in enumerate(manifest.features):
        column = dataset.features[:, j]
        stats = feature.stats
        assert stats.min <= stats.mean <= stats.max
        assert stats.min == column.min()
        assert stats.max == column.max()
        assert stats.mean == pytest.approx(column.mean())
        assert stats.std == pytest.approx(column.std())
        assert stats.std > 0
        bins = stats.bins
        assert len(bins.fractions) == len(bins.edges) + 1
        assert bins.edges == sorted(bins.edges)
        assert sum(bins.fractions) == pytest.approx(1.0)
        assert all(0 <= f <= 1 for f in bins.fractions)
        assert stats.min <= feature.example <= stats.max
    artifact.verify(source="test")


# -- drift ----------------------------------------------------------------------------------


def test_psi_is_zero_on_training_distribution() -> None:
    rng = np.random.default_rng(7)
    training = rng.normal(5.0, 1.0, 5000)
    stats = feature_stats(training)
    assert len(stats.bins.edges) == 9

    same = population_stability_index(stats.bins.fractions, bin_counts(training, stats.bins.edges))
    assert same == pytest.approx(0.0, abs=1e-9)

    fresh = rng.normal(5.0, 1.0, 5000)
    assert (
        population_stability_index(stats.bins.fractions, bin_counts(fresh, stats.bins.edges)) < 0.05
    )


def test_psi_is_large_for_a_shifted_distribution() -> None:
    rng = np.random.default_rng(7)
    training = rng.normal(5.0, 1.0, 5000)
    stats = feature_stats(training)
    shifted = rng.normal(6.0, 1.0, 5000)
    psi = population_stability_index(stats.bins.fractions, bin_counts(shifted, stats.bins.edges))
    assert psi > 0.25
    wider = rng.normal(5.0, 3.0, 5000)
    assert (
        population_stability_index(stats.bins.fractions, bin_counts(wider, stats.bins.edges)) > 0.25
    )


def test_psi_on_iris_columns() -> None:
    iris = load_iris_dataset()
    for j in range(iris.features.shape[1]):
        column = iris.features[:, j]
        stats = feature_stats(column)
        assert population_stability_index(
            stats.bins.fractions, bin_counts(column, stats.bins.edges)
        ) == pytest.approx(0.0, abs=1e-9)
        moved = column + 2 * column.std()
        assert (
            population_stability_index(stats.bins.fractions, bin_counts(moved, stats.bins.edges))
            > 0.25
        )


def test_psi_formula() -> None:
    # sum((a - e) * ln(a / e)) with e = [0.5, 0.5], a = [0.8, 0.2]
    expected = 0.3 * math.log(0.8 / 0.5) + (-0.3) * math.log(0.2 / 0.5)
    psi = population_stability_index([0.5, 0.5], np.array([80.0, 20.0]))
    assert psi == pytest.approx(expected)
    # Empty bins are floored, not a division by zero or an infinite log.
    assert math.isfinite(population_stability_index([0.5, 0.5, 0.0], np.array([0.0, 10.0, 0.0])))


def test_bin_counts_are_right_closed() -> None:
    edges = [1.0, 2.0]
    counts = bin_counts(np.array([0.5, 1.0, 1.5, 2.0, 2.5]), edges)
    assert counts.tolist() == [2.0, 2.0, 1.0]


def test_psi_of_no_data_is_zero() -> None:
    assert population_stability_index([0.5, 0.5], np.zeros(2)) == 0.0


# -- the full grid ---------------------------------------------------------------------------


@pytest.mark.slow
def test_full_six_algorithm_iris_training() -> None:
    messages: list[str] = []
    result = train(load_iris_dataset(), progress=messages.append, n_jobs=-1)

    assert set(ALGORITHMS) == {
        "knn",
        "svc",
        "logistic_regression",
        "random_forest",
        "decision_tree",
        "naive_bayes",
    }
    assert sorted(c.algorithm for c in result.candidates) == sorted(ALGORITHMS)
    assert result.cv_folds == 5
    assert result.train_rows == 120
    assert result.test_rows == 30
    for candidate in result.candidates:
        assert 0.8 <= candidate.cv_score <= 1.0
        assert candidate.size_compressed > 0
        assert any(candidate.algorithm in m for m in messages)
    assert result.best.cv_score == max(c.cv_score for c in result.candidates)

    artifact = build_artifact(result, name="iris")
    assert artifact.manifest.algorithm == result.best.algorithm
    assert artifact.manifest.metrics.test_accuracy >= 0.93
    assert artifact.manifest.target.classes == ["setosa", "versicolor", "virginica"]


# -- worker processes -------------------------------------------------------------------------


def _loky_workers() -> list[int]:
    """This process's children that are joblib (loky) workers, from /proc."""
    workers = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"LokyProcess" in command:
            workers.append(int(entry.name))
    return workers


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_training_with_n_jobs_leaves_no_worker_processes() -> None:
    train(load_iris_dataset(), algorithms=("naive_bayes",), cv_folds=2, n_jobs=2)
    assert _loky_workers() == []


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_without_the_shutdown_the_workers_stay(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the test above guards against, so it is known to see a worker when one stays.
    from model_store.training import search

    stop = search.stop_worker_processes
    monkeypatch.setattr(search, "stop_worker_processes", lambda: None)
    try:
        train(load_iris_dataset(), algorithms=("naive_bayes",), cv_folds=2, n_jobs=2)
        assert _loky_workers() != []
    finally:
        stop()
    assert _loky_workers() == []
