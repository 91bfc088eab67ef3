"""Grid search over the candidate algorithms, their comparison, and the best artifact."""

from __future__ import annotations

import io
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import joblib
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split

from model_store.artifact import Artifact, dump_model, sha256_hex
from model_store.drift import feature_stats
from model_store.manifest import Feature, JsonScalar, Manifest, Metrics, Target
from model_store.onnx_conversion import Conversion, convert, proof_sets
from model_store.training.data import Dataset
from model_store.training.grids import grid_size, search_space
from model_store.versions import RuntimeVersions

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SearchStep:
    """One algorithm's grid search, reported as it starts (``done`` False) and ends.

    ``fits`` (candidates x folds) weighs it against ``total_fits``, every algorithm's, so
    a progress bar can say how far the whole training is.
    """

    algorithm: str
    index: int
    count: int
    fits: int
    total_fits: int
    done: bool


@dataclass(frozen=True)
class CandidateResult:
    """The best configuration of one algorithm and what it costs to ship and serve."""

    algorithm: str
    params: dict[str, JsonScalar]
    cv_score: float
    test_accuracy: float
    size_compressed: int
    size_uncompressed: int
    load_seconds: float
    predict_seconds: float
    fit_seconds: float
    onnx: Conversion = field(repr=False)
    estimator: Any = field(repr=False)


@dataclass(frozen=True)
class TrainingResult:
    dataset: Dataset
    features: list[Feature]
    candidates: list[CandidateResult]
    train_rows: int
    test_rows: int
    cv_folds: int
    compress: int

    @property
    def best(self) -> CandidateResult:
        # Ties on CV score go to the better test accuracy, then the smaller artifact.
        return max(
            self.candidates,
            key=lambda c: (c.cv_score, c.test_accuracy, -c.size_compressed),
        )


def train(
    dataset: Dataset,
    *,
    algorithms: tuple[str, ...] | None = None,
    cv_folds: int = 5,
    test_size: float = 0.2,
    random_state: int = 42,
    compress: int = 3,
    n_jobs: int | None = None,
    progress: Progress | None = None,
    on_step: Callable[[SearchStep], None] | None = None,
) -> TrainingResult:
    """Grid-search each algorithm with k-fold CV on a stratified split, then compare.

    PROGRESS gets lines of text to show; ON_STEP each algorithm's start and end.
    """
    say = progress or (lambda _message: None)
    step = on_step or (lambda _step: None)
    x_train, x_test, y_train, y_test = train_test_split(
        dataset.features,
        dataset.labels,
        test_size=test_size,
        random_state=random_state,
        stratify=dataset.labels,
    )
    folds = StratifiedKFold(n_splits=cv_folds, shuffle=True, random_state=random_state)
    space = search_space(algorithms, random_state=random_state)
    features = [
        Feature(name=name, stats=feature_stats(dataset.features[:, i]), example=float(example))
        for i, (name, example) in enumerate(zip(dataset.feature_names, x_train[0], strict=True))
    ]
    # Every candidate's ONNX form is proven on the same rows, so the table compares alike.
    proof = proof_sets(features, held_out=x_test, training=x_train)
    candidates = []
    sizes = {algorithm: grid_size(grid) for algorithm, (_, grid) in space.items()}
    total_fits = sum(sizes.values()) * cv_folds
    try:
        for index, (algorithm, (pipeline, grid)) in enumerate(space.items(), start=1):
            size = sizes[algorithm]
            begun = SearchStep(algorithm, index, len(space), size * cv_folds, total_fits, False)
            step(begun)
            say(f"[{index}/{len(space)}] {algorithm}: {size} candidates x {cv_folds} folds")
            started = time.perf_counter()
            search = GridSearchCV(pipeline, grid, cv=folds, scoring="accuracy", n_jobs=n_jobs)
            with warnings.catch_warnings():
                # Some grid points (small C with saga/liblinear) stop at max_iter; their CV
                # score already says how good they are.
                warnings.simplefilter("ignore", ConvergenceWarning)
                search.fit(x_train, y_train)
            fit_seconds = time.perf_counter() - started
            candidate = _measure(
                algorithm, search, x_test, y_test, proof, compress=compress, fit_seconds=fit_seconds
            )
            say(
                f"      best cv {candidate.cv_score:.4f}, test {candidate.test_accuracy:.4f} "
                f"({fit_seconds:.1f}s); ONNX form: {candidate.onnx.parity}"
            )
            candidates.append(candidate)
            step(replace(begun, done=True))
    finally:
        # joblib keeps its worker processes (~180 MB each) alive for minutes in case
        # another parallel call comes; a training run is done with them.
        stop_worker_processes()
    return TrainingResult(
        dataset=dataset,
        features=features,
        candidates=candidates,
        train_rows=len(x_train),
        test_rows=len(x_test),
        cv_folds=cv_folds,
        compress=compress,
    )


def stop_worker_processes() -> None:
    """End the worker processes joblib's n_jobs left for reuse (loky's reusable executor).

    Does nothing when none was started; creating one just to stop it would spawn loky's
    resource tracker for nothing.
    """
    from joblib.externals.loky import reusable_executor

    executor = getattr(reusable_executor, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=True)


def _measure(
    algorithm: str,
    search: GridSearchCV,
    x_test: Any,
    y_test: Any,
    proof: dict[str, Any],
    *,
    compress: int,
    fit_seconds: float,
) -> CandidateResult:
    estimator = search.best_estimator_
    compressed = dump_model(estimator, compress)
    loads = []
    for _ in range(3):
        started = time.perf_counter()
        joblib.load(io.BytesIO(compressed))
        loads.append(time.perf_counter() - started)
    row = x_test[:1]
    predicts = []
    for _ in range(30):
        started = time.perf_counter()
        estimator.predict(row)
        predicts.append(time.perf_counter() - started)
    return CandidateResult(
        algorithm=algorithm,
        params={key: _json_param(value) for key, value in sorted(search.best_params_.items())},
        cv_score=float(search.best_score_),
        test_accuracy=float(search.score(x_test, y_test)),
        size_compressed=len(compressed),
        size_uncompressed=len(dump_model(estimator, 0)),
        load_seconds=min(loads),
        predict_seconds=statistics.median(predicts),
        fit_seconds=fit_seconds,
        onnx=convert(estimator, [str(c) for c in estimator.classes_], proof),
        estimator=estimator,
    )


def _json_param(value: Any) -> JsonScalar:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, np.generic):
        scalar: JsonScalar = value.item()
        return scalar
    return type(value).__name__  # an estimator choice such as the scaler


def build_artifact(
    result: TrainingResult, *, name: str, candidate: CandidateResult | None = None
) -> Artifact:
    """The artifact of the best candidate (or the one given), with its full manifest."""
    chosen = candidate or result.best
    data = dump_model(chosen.estimator, result.compress)
    dataset = result.dataset
    manifest = Manifest(
        name=name,
        created_at=datetime.now(UTC),
        sha256=sha256_hex(data),
        size_bytes=len(data),
        compress=result.compress,
        runtime=RuntimeVersions.current(),
        features=result.features,
        target=Target(
            name=dataset.target_name, classes=[str(c) for c in chosen.estimator.classes_]
        ),
        metrics=Metrics(
            cv_score=chosen.cv_score,
            test_accuracy=chosen.test_accuracy,
            cv_folds=result.cv_folds,
            train_rows=result.train_rows,
            test_rows=result.test_rows,
        ),
        algorithm=chosen.algorithm,
        params=chosen.params,
        training_data_sha256=dataset.sha256,
        onnx=chosen.onnx.form,
        onnx_refused=chosen.onnx.refused,
    )
    return Artifact(data, manifest, chosen.onnx.onnx_bytes)
