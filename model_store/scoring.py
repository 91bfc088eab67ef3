"""What scoring takes and gives, whichever runtime scores: a float matrix in, Predictions out."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from model_store.exceptions import InputError

if TYPE_CHECKING:
    from model_store.manifest import Feature

Matrix = npt.NDArray[np.float64]
_SMALL = 256


@dataclass(frozen=True)
class Predictions:
    """Labels in input order; probabilities[i, j] is P(classes[j]) for row i."""

    labels: list[str]
    classes: list[str]
    probabilities: Matrix | None

    @classmethod
    def from_probabilities(cls, probabilities: Matrix, classes: list[str]) -> Predictions:
        """The label is the most probable class (ties: the first in class order).

        One model pass gives both, and both runtimes decide labels the same way, so the
        reported label and probabilities always agree.
        """
        labels = [classes[i] for i in probabilities.argmax(axis=1).tolist()]
        return cls(labels, classes, probabilities)

    @classmethod
    def empty(cls, classes: list[str]) -> Predictions:
        return cls([], classes, np.empty((0, len(classes))))

    def nonfinite_rows(self) -> list[int]:
        """Rows whose probabilities are not all finite numbers: the model could not score them."""
        if self.probabilities is None or len(self.probabilities) == 0:
            return []
        finite = np.isfinite(self.probabilities).all(axis=1)
        return [] if finite.all() else np.flatnonzero(~finite).tolist()

    def probability_dicts(self) -> list[dict[str, float]] | None:
        if self.probabilities is None:
            return None
        return [dict(zip(self.classes, row, strict=True)) for row in self.probabilities.tolist()]


def _records_as_matrix(records: Sequence[Mapping[str, float]], features: Sequence[str]) -> Matrix:
    """Records keyed by feature name to a float matrix in the model's feature order."""
    try:
        matrix = np.array(
            [[record[name] for name in features] for record in records], dtype=np.float64
        )
    except KeyError as exc:
        raise InputError(f"record has no value for feature {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"records must hold numbers only: {exc}") from None
    return matrix.reshape(len(records), len(features))


def as_matrix(rows: Any, features: Sequence[str]) -> Matrix:
    """Records, a DataFrame or a matrix (feature order) as a checked float64 matrix."""
    if hasattr(rows, "columns"):  # a pandas DataFrame: select by name, in feature order
        missing = [name for name in features if name not in rows.columns]
        if missing:
            raise InputError(f"missing feature columns: {', '.join(missing)}")
        try:
            matrix = np.asarray(rows[list(features)].to_numpy(dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise InputError(f"feature columns must hold numbers only: {exc}") from None
    elif isinstance(rows, np.ndarray):
        if rows.dtype.kind not in "biuf":
            raise InputError(f"features must be real numbers, got an array of {rows.dtype}")
        matrix = rows.astype(np.float64, copy=False)
    else:
        matrix = _records_as_matrix(rows, features)
    if matrix.ndim != 2 or matrix.shape[1] != len(features):
        raise InputError(f"expected rows of {len(features)} features, got shape {matrix.shape}")
    if not _all_finite(matrix):
        raise InputError("features must be finite numbers (no NaN or infinity)")
    return matrix


def _all_finite(matrix: Matrix) -> bool:
    # A request's few values are checked faster in Python than by two ufunc calls.
    if matrix.size <= _SMALL:
        return all(map(math.isfinite, matrix.ravel().tolist()))
    return bool(np.isfinite(matrix).all())


def explain_unscorable(features: Sequence[Feature], row: Matrix) -> str:
    """Why a model could not score ROW, naming the fields far outside its training data."""
    outside = []
    for feature, value in zip(features, row.tolist(), strict=True):
        stats = feature.stats
        span = max(stats.max - stats.min, abs(stats.std), 1e-12)
        distance = max(stats.min - value, value - stats.max, 0.0) / span
        if distance > 0:
            outside.append((distance, feature.name, value, stats))
    if not outside:
        return "the model cannot score this combination of values (its output is not a number)"
    outside.sort(key=lambda item: -item[0])
    named = "; ".join(
        f"{name}={value:g} is outside the training range {stats.min:g} to {stats.max:g}"
        for _, name, value, stats in outside[:3]
    )
    return f"the model cannot score these values: {named}"
