"""The six candidate algorithms and their parameter grids.

Every pipeline is ``scaler -> classifier``; the scaler itself is a grid choice. Grids
follow the reference grid search, adapted to scikit-learn 1.9:
- logistic regression uses ``l1_ratio`` (1.8 deprecated ``penalty``: 0 is l2, 1 is l1,
  between is elastic-net) and saga for l1, since liblinear no longer does multiclass;
- SVC gets its probabilities from ``CalibratedClassifierCV(SVC(), ensemble=False)``,
  the replacement for the deprecated ``SVC(probability=True)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sklearn.base import ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

ParamGrid = list[dict[str, list[Any]]]
_SVC = "classifier__estimator__"


def _scalers() -> list[Any]:
    return [StandardScaler(), MinMaxScaler()]


def _c_values() -> list[float]:
    return [0.01, 0.1, 1, 10, 100]


def _pipeline(classifier: ClassifierMixin) -> Pipeline:
    return Pipeline([("scaler", StandardScaler()), ("classifier", classifier)])


def _grids(random_state: int) -> dict[str, tuple[Callable[[], Pipeline], ParamGrid]]:
    return {
        "knn": (
            lambda: _pipeline(KNeighborsClassifier()),
            [
                {
                    "scaler": _scalers(),
                    "classifier__n_neighbors": list(range(3, 21, 2)),
                    "classifier__p": [1, 2, 3],
                }
            ],
        ),
        "svc": (
            lambda: _pipeline(
                CalibratedClassifierCV(SVC(random_state=random_state), ensemble=False)
            ),
            [
                {"scaler": _scalers(), f"{_SVC}kernel": ["rbf"], f"{_SVC}C": _c_values()},
                {
                    "scaler": _scalers(),
                    f"{_SVC}kernel": ["poly"],
                    f"{_SVC}degree": [2, 3, 4, 5],
                    f"{_SVC}C": _c_values(),
                },
                {"scaler": _scalers(), f"{_SVC}kernel": ["linear"], f"{_SVC}C": _c_values()},
            ],
        ),
        "logistic_regression": (
            lambda: _pipeline(LogisticRegression(max_iter=5000, random_state=random_state)),
            [
                {
                    "scaler": _scalers(),
                    "classifier__C": [0.1, 1, 10],
                    "classifier__l1_ratio": [0.0],
                },
                {
                    "scaler": _scalers(),
                    "classifier__C": [0.1, 1, 10],
                    "classifier__l1_ratio": [1.0],
                    "classifier__solver": ["saga"],
                },
                {
                    "scaler": _scalers(),
                    "classifier__C": [0.1, 1, 10],
                    "classifier__l1_ratio": [0.4, 0.5, 0.6],
                    "classifier__solver": ["saga"],
                },
            ],
        ),
        "random_forest": (
            lambda: _pipeline(RandomForestClassifier(random_state=random_state)),
            [{"scaler": _scalers(), "classifier__n_estimators": [50, 100, 200]}],
        ),
        "decision_tree": (
            lambda: _pipeline(DecisionTreeClassifier(random_state=random_state)),
            [{"scaler": _scalers(), "classifier__max_depth": [None, 5, 10]}],
        ),
        "naive_bayes": (lambda: _pipeline(GaussianNB()), [{"scaler": _scalers()}]),
    }


ALGORITHMS = tuple(_grids(0))


def search_space(
    algorithms: tuple[str, ...] | None = None, *, random_state: int = 42
) -> dict[str, tuple[Pipeline, ParamGrid]]:
    """Fresh pipelines and grids for the named algorithms (all six by default)."""
    grids = _grids(random_state)
    chosen = algorithms or ALGORITHMS
    unknown = [a for a in chosen if a not in grids]
    if unknown:
        raise ValueError(f"unknown algorithm(s) {unknown}; choose from {', '.join(ALGORITHMS)}")
    return {name: (grids[name][0](), grids[name][1]) for name in chosen}


def grid_size(grid: ParamGrid) -> int:
    total = 0
    for part in grid:
        size = 1
        for values in part.values():
            size *= len(values)
        total += size
    return total
