"""The ONNX form of a fitted model, and the proof that it scores as the model does.

Tooling only: skl2onnx and onnx are imported here, by training and publishing, never by
anything a Lambda function loads. The converted graph always takes float64 input (the
manifest's dtype). Two graphs are tried, in order, and the first that passes the proof
is kept:

1. ``float64``: every step in double precision.
2. ``float64 scaler, float32 classifier``: the preprocessing in double, then a cast to
   float just before the classifier. This is what scikit-learn itself does for trees (it
   scales in float64 and compares in float32 inside the tree), and what makes a scaled
   forest convert: a float64 graph makes it vote differently near split thresholds, and
   ONNX Runtime's tree operators do not take double input at all.

The proof compares both on every row of the held-out split, the training data, edge rows
(each feature at its training minimum, maximum, beyond them and at its quantile bin edges)
and generated rows across and past the training ranges: every label must be identical and
every probability within ``TOLERANCE``. A model that does not convert, or fails the proof
with every graph, gets no ONNX form; the reason says what failed.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from model_store.artifact import Artifact, sha256_hex
from model_store.manifest import SCHEMA_VERSION, Feature, OnnxForm, ParityProof
from model_store.runtimes.onnx_runtime import OnnxRuntime, new_session, running_version
from model_store.scoring import Matrix

TOLERANCE = 1e-5
GENERATED_ROWS = 10_000
MAX_TRAINING_ROWS = 50_000  # a deterministic sample of larger training sets
TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}
INPUT_NAME = "input"
FLOAT64 = "float64"
FLOAT32_CLASSIFIER = "float64 scaler, float32 classifier"
FLOAT32_STAGE = "float32_stage"


@dataclass(frozen=True)
class Conversion:
    """An ONNX form with its bytes, or the reason there is none."""

    onnx_bytes: bytes | None
    form: OnnxForm | None
    refused: str | None
    predict_seconds: float | None = None  # one row through ONNX Runtime, median

    @property
    def parity(self) -> str:
        """One cell for a table: the proof's figures, or that there is no form."""
        if self.form is None:
            return "refused"
        proof = self.form.proof
        diff = proof.max_probability_diff
        return (
            f"{proof.label_agreement:.0%} labels, max dp {diff:.1e}"
            if diff is not None
            else (f"{proof.label_agreement:.0%} labels")
        )


def edge_rows(features: Sequence[Feature]) -> Matrix:
    """Rows at and beyond each feature's training extremes and at its quantile bin edges.

    One feature varies at a time (the others at their training means), then all together
    at their minimum, maximum, and beyond both.
    """
    means = np.array([f.stats.mean for f in features], dtype=np.float64)
    lows = np.array([f.stats.min for f in features], dtype=np.float64)
    highs = np.array([f.stats.max for f in features], dtype=np.float64)
    spans = np.maximum(highs - lows, 1.0)
    rows = []
    for j, feature in enumerate(features):
        span = spans[j]
        values = [lows[j], highs[j], lows[j] - span, highs[j] + span]
        values += [lows[j] - 10 * span, highs[j] + 10 * span, *feature.stats.bins.edges]
        for value in values:
            row = means.copy()
            row[j] = value
            rows.append(row)
    rows += [lows, highs, lows - spans, highs + spans]
    return np.array(rows, dtype=np.float64)


def generated_rows(features: Sequence[Feature], count: int, *, seed: int = 0) -> Matrix:
    """Uniform rows across each feature's training range and half a range past each end."""
    lows = np.array([f.stats.min for f in features], dtype=np.float64)
    highs = np.array([f.stats.max for f in features], dtype=np.float64)
    margin = np.maximum(highs - lows, 1.0) / 2
    return np.random.default_rng(seed).uniform(lows - margin, highs + margin, (count, len(lows)))


def proof_sets(
    features: Sequence[Feature],
    *,
    held_out: Matrix | None = None,
    training: Matrix | None = None,
    generated: int = GENERATED_ROWS,
) -> dict[str, Matrix]:
    """The rows the proof compares on, by set."""
    sets: dict[str, Matrix] = {}
    if held_out is not None and len(held_out):
        sets["held_out"] = np.asarray(held_out, dtype=np.float64)
    if training is not None and len(training):
        rows = np.asarray(training, dtype=np.float64)
        if len(rows) > MAX_TRAINING_ROWS:
            pick = np.random.default_rng(0).choice(len(rows), MAX_TRAINING_ROWS, replace=False)
            rows = rows[np.sort(pick)]
        sets["training"] = rows
    sets["edges"] = edge_rows(features)
    if generated:
        sets["generated"] = generated_rows(features, generated)
    return sets


def convert(
    estimator: Any,
    classes: Sequence[str],
    proof: Mapping[str, Matrix],
    *,
    tolerance: float = TOLERANCE,
) -> Conversion:
    """Convert ESTIMATOR and prove the result on PROOF's rows; never raises for a bad model."""
    if [str(c) for c in estimator.classes_] != list(classes):
        return Conversion(None, None, "the estimator's classes are not the manifest's")
    try:
        expected = _Expected.of(estimator, proof)
    except Exception as exc:
        return Conversion(None, None, f"the model cannot score the proof rows: {_first_line(exc)}")
    reasons = []
    for graph, candidate in _graphs(estimator, proof):
        try:
            onnx_model = _to_onnx(candidate, n_features=_width(proof))
        except Exception as exc:
            reasons.append(f"{graph} graph: skl2onnx cannot convert it: {_first_line(exc)}")
            continue
        if graph != FLOAT64:
            _expose_float32_stage(onnx_model)
        data = onnx_model.SerializeToString()
        try:
            runtime = _runtime(data, onnx_model, list(classes))
            figures = _prove(expected, runtime, proof)
        except Exception as exc:
            reasons.append(f"{graph} graph: ONNX Runtime cannot score it: {_first_line(exc)}")
            continue
        failure = _failure(figures, tolerance)
        if failure:
            reasons.append(f"{graph} graph: {failure}")
            continue
        form = _form(data, onnx_model, graph, runtime, figures, tolerance)
        return Conversion(data, form, None, _latency(runtime, proof))
    return Conversion(None, None, "; ".join(reasons))


# -- graphs ------------------------------------------------------------------------------


def _graphs(estimator: Any, proof: Mapping[str, Matrix]) -> list[tuple[str, Any]]:
    from skl2onnx.sklapi import CastTransformer
    from sklearn.pipeline import Pipeline

    cast = CastTransformer(dtype=np.float32).fit(next(iter(proof.values()))[:1])
    if isinstance(estimator, Pipeline) and len(estimator.steps) > 1:
        steps = [*estimator.steps[:-1], ("cast_to_float32", cast), estimator.steps[-1]]
        return [(FLOAT64, estimator), (FLOAT32_CLASSIFIER, Pipeline(steps))]
    return [
        (FLOAT64, estimator),
        ("float32 classifier", Pipeline([("cast_to_float32", cast), ("classifier", estimator)])),
    ]


def _to_onnx(model: Any, *, n_features: int) -> Any:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType

    from model_store import onnx_svc

    onnx_svc.install()

    options = {id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None
    with warnings.catch_warnings():
        # Converter chatter (deprecations inside skl2onnx and onnx) says nothing about
        # this model; the proof is what decides.
        warnings.simplefilter("ignore")
        return convert_sklearn(
            model,
            initial_types=[(INPUT_NAME, DoubleTensorType([None, n_features]))],
            options=options,
            target_opset=TARGET_OPSET,
        )


def _expose_float32_stage(onnx_model: Any) -> None:
    """Make the values the graph casts to float32 an output (named FLOAT32_STAGE), so the
    runtime can tell the rows float32 cannot hold from the rest."""
    from onnx import TensorProto, helper

    for node in onnx_model.graph.node:
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if node.op_type == "Cast" and to == TensorProto.FLOAT:
            onnx_model.graph.node.append(
                helper.make_node("Identity", [node.input[0]], [FLOAT32_STAGE])
            )
            onnx_model.graph.output.append(
                helper.make_tensor_value_info(FLOAT32_STAGE, TensorProto.DOUBLE, None)
            )
            return


def _runtime(data: bytes, onnx_model: Any, classes: list[str]) -> OnnxRuntime:
    outputs = [o.name for o in onnx_model.graph.output]
    label = outputs[0]
    probabilities = outputs[1] if len(outputs) > 1 and outputs[1] != FLOAT32_STAGE else None
    stage = FLOAT32_STAGE if FLOAT32_STAGE in outputs else None
    return OnnxRuntime(new_session(data), INPUT_NAME, label, probabilities, classes, stage)


# -- proof -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Expected:
    """What the model itself gives on each proof set: probabilities, else labels."""

    probabilities: dict[str, Matrix] | None
    labels: dict[str, list[str]]

    @classmethod
    def of(cls, estimator: Any, proof: Mapping[str, Matrix]) -> _Expected:
        classes = [str(c) for c in estimator.classes_]
        if not hasattr(estimator, "predict_proba"):
            labels = {k: [str(v) for v in estimator.predict(rows)] for k, rows in proof.items()}
            return cls(None, labels)
        probabilities = {
            k: np.asarray(estimator.predict_proba(rows), dtype=np.float64)
            for k, rows in proof.items()
        }
        labels = {
            k: [classes[i] for i in p.argmax(axis=1).tolist()] for k, p in probabilities.items()
        }
        return cls(probabilities, labels)


@dataclass(frozen=True)
class _Figures:
    rows: dict[str, int]
    disagreements: int
    max_diff: float | None
    non_finite: int


def _prove(expected: _Expected, runtime: OnnxRuntime, proof: Mapping[str, Matrix]) -> _Figures:
    if (expected.probabilities is None) != (runtime.probabilities_output is None):
        raise ValueError("the graph does not give what the estimator gives")
    disagreements = non_finite = 0
    max_diff: float | None = None if expected.probabilities is None else 0.0
    for name, rows in proof.items():
        got = runtime.predict(rows)
        if expected.probabilities is not None and got.probabilities is not None:
            want = expected.probabilities[name]
            if got.probabilities.shape != want.shape:
                raise ValueError(f"probabilities of shape {got.probabilities.shape}")
            non_finite += int((~np.isfinite(got.probabilities)).any(axis=1).sum())
            diff = float(np.abs(got.probabilities - want).max(initial=0.0))
            max_diff = max(max_diff or 0.0, diff)
        disagreements += sum(a != b for a, b in zip(expected.labels[name], got.labels, strict=True))
    return _Figures({k: len(m) for k, m in proof.items()}, disagreements, max_diff, non_finite)


def _failure(figures: _Figures, tolerance: float) -> str:
    total = sum(figures.rows.values())
    problems = []
    if figures.disagreements:
        problems.append(f"labels differ on {figures.disagreements} of {total} rows")
    if figures.non_finite:
        problems.append(f"non-finite probabilities on {figures.non_finite} rows")
    if figures.max_diff is not None and not figures.max_diff <= tolerance:
        problems.append(
            f"probabilities differ by up to {figures.max_diff:.2g} (tolerance {tolerance:g})"
        )
    return "proof failed: " + ", ".join(problems) if problems else ""


def _form(
    data: bytes,
    onnx_model: Any,
    graph: str,
    runtime: OnnxRuntime,
    figures: _Figures,
    tolerance: float,
) -> OnnxForm:
    import onnx
    import skl2onnx

    total = sum(figures.rows.values())
    return OnnxForm(
        sha256=sha256_hex(data),
        size_bytes=len(data),
        opset={imp.domain: int(imp.version) for imp in onnx_model.opset_import},
        graph=graph,
        input_name=runtime.input_name,
        label_output=runtime.label_output,
        probabilities_output=runtime.probabilities_output,
        float32_stage=runtime.float32_stage,
        converter={"skl2onnx": skl2onnx.__version__, "onnx": onnx.__version__},
        onnxruntime=running_version(),
        proof=ParityProof(
            tolerance=tolerance,
            rows=figures.rows,
            label_agreement=(total - figures.disagreements) / total if total else 1.0,
            max_probability_diff=figures.max_diff,
        ),
    )


def _latency(runtime: OnnxRuntime, proof: Mapping[str, Matrix]) -> float:
    row = next(iter(proof.values()))[:1]
    return _median_seconds(lambda: runtime.predict(row), runs=30, warmup=5)


def _median_seconds(call: Callable[[], object], *, runs: int, warmup: int) -> float:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _width(proof: Mapping[str, Matrix]) -> int:
    return int(next(iter(proof.values())).shape[1])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def with_onnx_form(artifact: Artifact, *, training: Matrix | None = None) -> Artifact:
    """ARTIFACT with a freshly converted and proven ONNX form, or the reason there is none.

    For models made before ONNX forms existed (or elsewhere): the joblib bytes are verified
    and unpickled (this is tooling, running the publisher's own model), and proven on edge
    and generated rows from the manifest's training statistics, plus TRAINING when given.
    The joblib bytes are kept as they are.
    """
    from model_store.runtimes.sklearn_runtime import unpickle

    artifact.verify(source="artifact")
    manifest = artifact.manifest
    estimator = unpickle(artifact.model_bytes, f"{manifest.name} model.joblib").estimator
    proof = proof_sets(manifest.features, training=training)
    conversion = convert(estimator, manifest.target.classes, proof)
    updated = manifest.model_copy(
        update={
            "schema_version": SCHEMA_VERSION,
            "onnx": conversion.form,
            "onnx_refused": conversion.refused,
        }
    )
    return Artifact(artifact.model_bytes, updated, conversion.onnx_bytes)
