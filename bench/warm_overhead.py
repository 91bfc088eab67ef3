"""Warm-path cost of the API handler against the model's own predict and a bare app, in one run.

    .venv/bin/python bench/warm_overhead.py [--runs 3000] [--batch-runs 300]

The handler is the real Lambda entry point (Powertools, Mangum, FastAPI, validation, JSON
in and out, metrics flush) called in process with events/predict.json, once per serving
runtime; the model is the iris best, loaded once (warm) from moto's in-process S3. Beside
it, interleaved:

- the model's own predict: one row through the ONNX Runtime session (and, for the sklearn
  handler, scikit-learn's predict_proba);
- the bare app: bench/handlers/bare_app.py (FastAPI, one async POST route that reads the
  body, json.loads it and returns a constant, wrapped by Mangum with lifespan off), called
  with the same event;
- the batch floor: json.loads of a 1,000-record body, a numpy array, ONNX predict and
  json.dumps of the same response the handler gives.

Targets (issue 12): handler overhead over the model's own predict (onnx, p50) <= 2.5x the
bare app's p50; /batch_predict of 1,000 (onnx) <= 2x the batch floor.
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._support import (  # noqa: E402
    Timing,
    interleaved,
    iris_best_artifact,
    lambda_context,
    stdout_to_devnull,
)

OVERHEAD_TARGET = 2.5  # x the bare app
BATCH_TARGET = 2.0  # x the floor
HANDLER = ROOT / "functions" / "predict_api" / "predict_api" / "handler.py"
CONTEXT = lambda_context("PredictApiFunction")


def _load(name: str, path: Path) -> ModuleType:
    """A module from PATH under its own NAME: each serving runtime gets its own handler
    module (the app and settings are made at import, as in a Lambda environment)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _handler_for(runtime: str) -> ModuleType:
    os.environ["SERVING_RUNTIME"] = runtime
    return _load(f"bench_handler_{runtime}", HANDLER)


def _invoker(handler: Callable[..., Any], event: dict[str, Any]) -> Callable[[], None]:
    def invoke() -> None:
        response = handler(copy.copy(event), CONTEXT)
        assert response["statusCode"] == 200, response

    return invoke


def _batch_floor(session: Any, input_name: str, output: str, classes: list[str], body: str) -> None:
    """What any handler must do for 1,000 records: parse, array, predict, serialise."""
    records = json.loads(body)["records"]
    matrix = np.array([list(r.values()) for r in records], dtype=np.float64)
    (probabilities,) = session.run([output], {input_name: matrix})
    labels = probabilities.argmax(axis=1).tolist()
    json.dumps(
        {
            "predictions": [
                {
                    "prediction": classes[label],
                    "probabilities": dict(zip(classes, row, strict=True)),
                }
                for label, row in zip(labels, probabilities.tolist(), strict=True)
            ],
            "count": len(records),
            "model": {"name": "iris", "version": "1"},
            "request_id": "bench",
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--batch-runs", type=int, default=300)
    parser.add_argument(
        "--no-freeze",
        dest="freeze",
        action="store_false",
        help="leave the setup's objects (training, moto) to the garbage collector; a Lambda "
        "process would not hold them, so by default they are frozen out of its way",
    )
    args = parser.parse_args()

    import boto3

    from bench._support import moto_server
    from devstack.rie import free_port

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        MODEL_BUCKET="bench-models",
        MODEL_NAME="iris",
        POWERTOOLS_LOG_LEVEL="INFO",
    )
    from model_store import open_registry
    from tests.support.events import load_event

    artifact = iris_best_artifact()
    with moto_server(free_port()) as endpoint:
        os.environ["AWS_ENDPOINT_URL_S3"] = endpoint
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="bench-models")
        registry = open_registry("s3://bench-models", s3_client=client)
        registry.publish(artifact, name="iris", version="1")
        registry.promote("iris", "1")

        handlers = {runtime: _handler_for(runtime) for runtime in ("onnx", "sklearn")}
        bare_app = _load("bench_bare_app", ROOT / "bench" / "handlers" / "bare_app.py")
        one = load_event("predict.json")
        record = json.loads(one["body"])
        batch = load_event("batch_predict.json")
        batch_body = json.dumps({"records": [dict(record) for _ in range(1000)]})
        batch["body"] = batch_body
        invoke = {r: _invoker(m.handler, one) for r, m in handlers.items()}
        invoke_batch = _invoker(handlers["onnx"].handler, batch)
        invoke_bare = _invoker(bare_app.handler, one)
        with stdout_to_devnull():
            for call in (*invoke.values(), invoke_batch, invoke_bare):
                call()  # cold: loads the model once per runtime

    onnx_model = handlers["onnx"].app.state.service.loader.current
    sklearn_model = handlers["sklearn"].app.state.service.loader.current
    assert onnx_model.runtime.name == "onnx"
    assert sklearn_model.runtime.name == "sklearn"
    session = onnx_model.runtime.session
    form = onnx_model.manifest.onnx
    features = onnx_model.manifest.feature_names
    row = np.array([[record[f] for f in features]], dtype=np.float64)
    estimator = sklearn_model.estimator
    classes = onnx_model.manifest.target.classes
    assert form is not None
    assert form.probabilities_output is not None
    output = form.probabilities_output

    if args.freeze:
        gc.collect()
        gc.freeze()
    with stdout_to_devnull():
        single = interleaved(
            args.runs,
            200,
            invoke["onnx"],
            lambda: session.run([output], {form.input_name: row}),
            invoke_bare,
        )
        # scikit-learn's milliseconds apart, so they do not crowd the microseconds out.
        sklearn = interleaved(
            args.runs // 2,
            100,
            invoke["sklearn"],
            lambda: estimator.predict_proba(row),
            invoke_bare,
        )
        many = interleaved(
            args.batch_runs,
            20,
            invoke_batch,
            lambda: _batch_floor(session, form.input_name, output, classes, batch_body),
        )

    handler_onnx, model_onnx, bare = single
    handler_sklearn, model_sklearn, bare_sklearn = sklearn
    handler_batch, floor_batch = many
    print(
        f"model: {onnx_model.manifest.algorithm} (iris best), ONNX form: {form.graph} graph; "
        f"{args.runs} / {args.batch_runs} runs, interleaved"
    )
    rows: list[tuple[str, Timing]] = [
        ("handler /predict, onnx", handler_onnx),
        ("  the model's own predict (ONNX Runtime)", model_onnx),
        ("bare app (FastAPI + Mangum)", bare),
        ("handler /predict, sklearn", handler_sklearn),
        ("  the model's own predict_proba (sklearn)", model_sklearn),
        ("  bare app, beside the sklearn calls", bare_sklearn),
        ("handler /batch_predict 1000, onnx", handler_batch),
        ("  floor: loads + array + ONNX + dumps", floor_batch),
    ]
    print(f"{'':44}{'p50 us':>10}{'p99 us':>10}")
    for label, timing in rows:
        print(f"{label:44}{timing.p50:10.1f}{timing.p99:10.1f}")
    overhead = handler_onnx.p50 - model_onnx.p50
    sklearn_overhead = handler_sklearn.p50 - model_sklearn.p50
    ratio = overhead / bare.p50
    batch_ratio = handler_batch.p50 / floor_batch.p50
    print(
        f"\nhandler overhead, onnx (p50):       {overhead:8.1f} us = {ratio:.2f}x the bare app   "
        f"target <= {OVERHEAD_TARGET}x   {'PASS' if ratio <= OVERHEAD_TARGET else 'FAIL'}"
    )
    print(
        f"handler overhead, sklearn (p50):    {sklearn_overhead:8.1f} us = "
        f"{sklearn_overhead / bare_sklearn.p50:.2f}x the bare app   (no target)"
    )
    print(
        f"/batch_predict 1000 / floor (p50):  {batch_ratio:8.2f} x   target <= {BATCH_TARGET}x   "
        f"{'PASS' if batch_ratio <= BATCH_TARGET else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
