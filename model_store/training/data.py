"""Training data: iris (bundled with scikit-learn) or a user CSV with a target column."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from model_store.exceptions import TrainingDataError

MIN_ROWS = 10


@dataclass(frozen=True)
class Dataset:
    features: npt.NDArray[np.float64]
    labels: npt.NDArray[np.str_]
    feature_names: list[str]
    target_name: str
    source: str

    @property
    def sha256(self) -> str:
        """Hash of the data as trained on: names, float64 matrix bytes and labels."""
        digest = hashlib.sha256()
        digest.update(json.dumps([self.feature_names, self.target_name]).encode())
        digest.update(np.ascontiguousarray(self.features, dtype="<f8").tobytes())
        digest.update("\n".join(self.labels.tolist()).encode())
        return digest.hexdigest()


def load_iris_dataset() -> Dataset:
    from sklearn.datasets import load_iris

    iris = load_iris()
    names = [str(n).replace(" (cm)", "").replace(" ", "_") for n in iris.feature_names]
    labels = np.asarray(iris.target_names[iris.target], dtype=np.str_)
    return Dataset(
        np.asarray(iris.data, dtype=np.float64), labels, names, "species", "sklearn iris"
    )


def load_csv_dataset(path: Path, target: str) -> Dataset:
    """Read a CSV with a header; every column but TARGET must be numeric and finite."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader, [])]
            rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    except OSError as exc:
        raise TrainingDataError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise TrainingDataError(f"{path} is not a readable UTF-8 CSV: {exc}") from None
    if not header:
        raise TrainingDataError(f"{path} is empty: expected a header row")
    if target not in header:
        raise TrainingDataError(
            f"{path} has no target column {target!r}; columns are: {', '.join(header)}"
        )
    if len(set(header)) != len(header):
        raise TrainingDataError(f"{path} has duplicate column names")
    target_index = header.index(target)
    feature_names = [name for name in header if name != target]
    if not feature_names:
        raise TrainingDataError(f"{path} has no feature columns besides {target!r}")
    matrix = np.empty((len(rows), len(feature_names)), dtype=np.float64)
    labels: list[str] = []
    for i, (line, row) in enumerate(rows):
        if len(row) != len(header):
            raise TrainingDataError(
                f"{path} line {line}: {len(row)} fields, header has {len(header)}"
            )
        label = row[target_index].strip()
        if not label:
            raise TrainingDataError(f"{path} line {line}: empty target {target!r}")
        labels.append(label)
        values = [cell for j, cell in enumerate(row) if j != target_index]
        for j, (name, cell) in enumerate(zip(feature_names, values, strict=True)):
            matrix[i, j] = _number(cell, f"{path} line {line} column {name!r}")
    if len(rows) < MIN_ROWS:
        raise TrainingDataError(f"{path} has {len(rows)} data rows; at least {MIN_ROWS} needed")
    if len(set(labels)) < 2:
        raise TrainingDataError(f"{path}: target {target!r} has a single class")
    return Dataset(matrix, np.asarray(labels, dtype=np.str_), feature_names, target, str(path))


def _number(cell: str, where: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise TrainingDataError(
            f"{where}: {cell!r} is not a number (features must be numeric)"
        ) from None
    if not math.isfinite(value):
        raise TrainingDataError(f"{where}: {cell!r} is not finite")
    return value
