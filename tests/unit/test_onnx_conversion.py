"""ONNX forms of the grid's six algorithms, and the proof that decides whether one is kept.

Each algorithm is fitted here once with fixed parameters of its grid (no search: the
proof is about the conversion, not the choice), converted, and proven on the held-out
split, the training rows, edge rows and generated rows. The figures asserted are the
proof's own; a conversion that is refused says why.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from model_store.drift import feature_stats
from model_store.manifest import Feature
from model_store.onnx_conversion import (
    FLOAT32_CLASSIFIER,
    FLOAT64,
    TOLERANCE,
    Conversion,
    convert,
    edge_rows,
    generated_rows,
    proof_sets,
)
from model_store.runtimes.onnx_runtime import new_session
from model_store.training import load_iris_dataset

Matrix = npt.NDArray[np.float64]


class Split:
    def __init__(self) -> None:
        data = load_iris_dataset()
        self.x_train, self.x_test, self.y_train, _ = train_test_split(
            data.features, data.labels, test_size=0.2, random_state=42, stratify=data.labels
        )
        self.features = [
            Feature(name=name, stats=feature_stats(data.features[:, i]), example=0.0)
            for i, name in enumerate(data.feature_names)
        ]
        self.proof = proof_sets(self.features, held_out=self.x_test, training=self.x_train)


@pytest.fixture(scope="module")
def split() -> Split:
    return Split()


def fitted(split: Split, classifier: Any, scaler: Any = None) -> Pipeline:
    steps = [("scaler", scaler or StandardScaler()), ("classifier", classifier)]
    return Pipeline(steps).fit(split.x_train, split.y_train)


def converted(split: Split, model: Any) -> Conversion:
    return convert(model, [str(c) for c in model.classes_], split.proof)


def assert_proven(conversion: Conversion, graph: str, max_diff: float, split: Split) -> None:
    assert conversion.refused is None
    assert conversion.onnx_bytes is not None
    form = conversion.form
    assert form is not None
    assert form.graph == graph
    proof = form.proof
    assert proof.tolerance == TOLERANCE == 1e-5
    assert proof.label_agreement == 1.0
    assert proof.max_probability_diff is not None
    assert proof.max_probability_diff <= max_diff
    assert proof.rows == {
        "held_out": len(split.x_test),
        "training": len(split.x_train),
        "edges": len(edge_rows(split.features)),
        "generated": 10_000,
    }
    assert conversion.predict_seconds is not None
    assert conversion.predict_seconds > 0
    assert form.input_name == "input"
    assert form.probabilities_output is not None
    assert 1 <= form.opset[""] <= 18  # skl2onnx uses the lowest that has its operators
    assert len(form.sha256) == 64
    assert form.size_bytes == len(conversion.onnx_bytes)


# -- the six algorithms of the grid --------------------------------------------------------


def test_calibrated_polynomial_svc_converts_in_float64(split: Split) -> None:
    svc = CalibratedClassifierCV(SVC(kernel="poly", degree=3, C=1, random_state=42), ensemble=False)
    assert_proven(converted(split, fitted(split, svc)), FLOAT64, 4e-6, split)


@pytest.mark.parametrize(
    "svc",
    [
        pytest.param(SVC(kernel="poly", degree=3, C=100, random_state=42), id="poly-C100"),
        pytest.param(SVC(kernel="rbf", C=10, random_state=42), id="rbf"),
        pytest.param(SVC(kernel="linear", C=1, random_state=42), id="linear"),
        pytest.param(SVC(kernel="sigmoid", C=1, random_state=42), id="sigmoid"),
    ],
)
def test_calibrated_svc_decisions_are_computed_in_double_precision(split: Split, svc: SVC) -> None:
    """ONNX-ML's SVMClassifier keeps support vectors and coefficients in float32: behind a
    steep calibration that moved probabilities by 1.3e-5 (the grid's iris winner, C=100).
    The project's converter computes the decisions in float64, as libsvm does."""
    model = fitted(split, CalibratedClassifierCV(svc, ensemble=False))
    assert_proven(converted(split, model), FLOAT64, 1e-9, split)


def test_euclidean_knn_converts_exactly(split: Split) -> None:
    knn = KNeighborsClassifier(n_neighbors=5, p=2)
    assert_proven(converted(split, fitted(split, knn, MinMaxScaler())), FLOAT64, 0.0, split)


def test_logistic_regression_converts_to_rounding(split: Split) -> None:
    model = fitted(split, LogisticRegression(max_iter=5000))
    assert_proven(converted(split, model), FLOAT64, 1e-12, split)


def test_naive_bayes_converts_to_rounding(split: Split) -> None:
    assert_proven(converted(split, fitted(split, GaussianNB())), FLOAT64, 1e-12, split)


def test_a_scaled_random_forest_needs_the_float32_classifier_graph(split: Split) -> None:
    model = fitted(split, RandomForestClassifier(n_estimators=50, random_state=42))
    conversion = converted(split, model)
    assert_proven(conversion, FLOAT32_CLASSIFIER, 1e-6, split)

    # Why: a float64 graph scales in double and then compares in double too, while
    # scikit-learn compares in float32 inside the trees, so votes near thresholds flip.
    plain = _float64_graph_probabilities(model, split.x_train)
    expected = model.predict_proba(split.x_train)
    assert np.abs(plain - expected).max() > 100 * TOLERANCE


def test_a_scaled_decision_tree_needs_the_float32_classifier_graph(split: Split) -> None:
    model = fitted(split, DecisionTreeClassifier(random_state=42))
    assert_proven(converted(split, model), FLOAT32_CLASSIFIER, 0.0, split)
    # ONNX Runtime's tree classifier does not take float64 at all.
    with pytest.raises(Exception, match="TreeEnsembleClassifier"):
        _float64_graph_probabilities(model, split.x_train)


def _float64_graph_probabilities(model: Any, rows: Matrix) -> Matrix:
    """What a plain float64 conversion gives (the first graph convert() tries)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType

    onnx_model = convert_sklearn(
        model,
        initial_types=[("input", DoubleTensorType([None, rows.shape[1]]))],
        options={id(model): {"zipmap": False}},
        target_opset={"": 18, "ai.onnx.ml": 3},
    )
    session = new_session(onnx_model.SerializeToString())
    (probabilities,) = session.run(["probabilities"], {"input": rows})
    return np.asarray(probabilities, dtype=np.float64)


# -- refusals ---------------------------------------------------------------------------------


def test_manhattan_knn_with_distance_ties_is_refused_with_the_proofs_figures(
    split: Split,
) -> None:
    """Iris has one decimal: equal Manhattan distances are common, and ONNX Runtime breaks
    the ties between neighbours differently from scikit-learn."""
    model = fitted(split, KNeighborsClassifier(n_neighbors=7, p=1), MinMaxScaler())

    conversion = converted(split, model)

    assert conversion.form is None
    assert conversion.onnx_bytes is None
    assert conversion.parity == "refused"
    reason = conversion.refused
    assert reason is not None
    assert f"{FLOAT64} graph: proof failed: probabilities differ by up to 0.14" in reason
    assert f"{FLOAT32_CLASSIFIER} graph: proof failed" in reason
    assert "(tolerance 1e-05)" in reason


class _Majority(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A classifier skl2onnx knows nothing about."""

    def fit(self, x: Matrix, y: Any) -> _Majority:
        self.classes_, counts = np.unique(y, return_counts=True)
        self.prior_ = counts / counts.sum()
        return self

    def predict_proba(self, x: Matrix) -> Matrix:
        return np.tile(self.prior_, (len(x), 1))

    def predict(self, x: Matrix) -> Any:
        return self.classes_[self.predict_proba(x).argmax(axis=1)]


def test_a_model_skl2onnx_cannot_convert_is_refused_with_the_reason(split: Split) -> None:
    conversion = converted(split, fitted(split, _Majority()))

    assert conversion.form is None
    assert conversion.refused is not None
    assert f"{FLOAT64} graph: skl2onnx cannot convert it" in conversion.refused
    assert "_Majority" in conversion.refused


def test_a_model_whose_classes_are_not_the_manifests_is_refused(split: Split) -> None:
    model = fitted(split, GaussianNB())
    conversion = convert(model, ["virginica", "versicolor", "setosa"], split.proof)
    assert conversion.form is None
    assert conversion.refused == "the estimator's classes are not the manifest's"


# -- the proof's rows ---------------------------------------------------------------------------


def test_edge_rows_reach_every_extreme_and_bin_edge(split: Split) -> None:
    rows = edge_rows(split.features)
    for j, feature in enumerate(split.features):
        column = rows[:, j]
        stats = feature.stats
        span = max(stats.max - stats.min, 1.0)
        for value in [stats.min, stats.max, stats.min - span, stats.max + span]:
            assert value in column
        assert column.min() == stats.min - 10 * span
        assert column.max() == stats.max + 10 * span
        assert set(stats.bins.edges) <= set(column.tolist())
    assert np.isfinite(rows).all()


def test_generated_rows_span_and_pass_the_training_ranges(split: Split) -> None:
    rows = generated_rows(split.features, 5_000)
    assert rows.shape == (5_000, 4)
    for j, feature in enumerate(split.features):
        assert rows[:, j].min() < feature.stats.min
        assert rows[:, j].max() > feature.stats.max
    # Deterministic: the same proof twice proves the same thing.
    np.testing.assert_array_equal(rows, generated_rows(split.features, 5_000))
