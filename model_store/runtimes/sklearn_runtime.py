"""The scikit-learn runtime: the unpickled estimator itself.

Only the loading gate calls ``unpickle``, after the manifest has vouched for the bytes.
joblib (and scikit-learn, through the pickle) is imported here and nowhere on the onnx path.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from model_store.exceptions import IntegrityError
from model_store.scoring import Matrix, Predictions


@dataclass(frozen=True)
class SklearnRuntime:
    estimator: Any
    classes: list[str] = field(init=False)
    name: Literal["sklearn"] = field(default="sklearn", init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", [str(c) for c in self.estimator.classes_])

    def predict(self, matrix: Matrix) -> Predictions:
        if matrix.shape[0] == 0:
            return Predictions.empty(self.classes)
        if not hasattr(self.estimator, "predict_proba"):
            labels = [str(label) for label in self.estimator.predict(matrix)]
            return Predictions(labels, self.classes, None)
        # Overflow on extreme values shows as non-finite probabilities, which the caller
        # reports per row: numpy's warnings about it would only be noise.
        with np.errstate(all="ignore"):
            try:
                probabilities = self.estimator.predict_proba(matrix)
            except ValueError:
                # scikit-learn refuses the whole matrix when one row does not fit its
                # float32 stage (trees): score row by row, the refused ones as NaN.
                probabilities = np.vstack([self._one(row) for row in matrix])
        return Predictions.from_probabilities(
            np.asarray(probabilities, dtype=np.float64), self.classes
        )

    def _one(self, row: Matrix) -> Matrix:
        try:
            return np.asarray(self.estimator.predict_proba(row[np.newaxis, :]), dtype=np.float64)
        except ValueError:
            return np.full((1, len(self.classes)), np.nan)


def unpickle(data: bytes, source: str) -> SklearnRuntime:
    """Unpickle verified bytes (this runs code: the caller has checked the sha256)."""
    import joblib

    try:
        estimator = joblib.load(io.BytesIO(data))
    except Exception as exc:
        raise IntegrityError(f"{source}: model.joblib cannot be unpickled: {exc}") from exc
    if not hasattr(estimator, "classes_"):
        raise IntegrityError(f"{source}: model.joblib does not hold a fitted classifier")
    return SklearnRuntime(estimator)
