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
        probabilities = np.asarray(self.estimator.predict_proba(matrix), dtype=np.float64)
        return Predictions.from_probabilities(probabilities, self.classes)


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
