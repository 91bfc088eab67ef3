"""Warm-path cost of the API handler against bare ``model.predict``, in one run.

    .venv/bin/python bench/warm_overhead.py [--runs 3000]

The handler is the real Lambda entry point (Powertools decorators, Mangum, FastAPI,
validation, JSON in and out, metrics flush) called with events/predict.json; the model
is the iris best model, loaded once (warm), from moto's in-process S3. Targets (issue 4):
handler p50 - bare p50 <= 300 us for one row; /batch_predict of 1,000 records <= 2x bare
predict on the same array.
"""

from __future__ import annotations

import argparse
import copy
import gc
import importlib
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._support import interleaved, iris_best_artifact, stdout_to_devnull  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    from moto import mock_aws

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        MODEL_BUCKET="bench-models",
        MODEL_NAME="iris",
        POWERTOOLS_LOG_LEVEL="INFO",
    )
    from model_store import open_registry
    from tests.events import load_event

    artifact = iris_best_artifact()
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket="bench-models")
        registry = open_registry("s3://bench-models", s3_client=client)
        registry.publish(artifact, name="iris", version="1")
        registry.promote("iris", "1")

        handler_module = importlib.import_module("predict_api.handler")
        context = SimpleNamespace(
            function_name="PredictApiFunction",
            function_version="$LATEST",
            invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:bench",
            memory_limit_in_mb=512,
            aws_request_id="bench",
            log_group_name="g",
            log_stream_name="s",
            get_remaining_time_in_millis=lambda: 30_000,
        )
        one = load_event("predict.json")
        record = json.loads(one["body"])
        batch = load_event("batch_predict.json")
        records = [dict(record) for _ in range(1000)]
        batch["body"] = json.dumps({"records": records})

        def invoke(event: dict[str, object]) -> None:
            response = handler_module.handler(copy.copy(event), context)
            assert response["statusCode"] == 200, response

        with stdout_to_devnull():
            invoke(one)  # cold: loads the model once
        loaded = handler_module.app.state.service.loader.current
        estimator = loaded.estimator
        features = loaded.manifest.feature_names
        row = np.array([[record[f] for f in features]])
        matrix = np.repeat(row, 1000, axis=0)

        from model_store import predict

        health = load_event("health.json")
        if args.freeze:
            gc.collect()
            gc.freeze()
        with stdout_to_devnull():
            single = interleaved(
                args.runs,
                200,
                lambda: invoke(one),
                lambda: estimator.predict(row),
                lambda: predict(estimator, loaded.manifest, row),
                lambda: invoke(health),
            )
            many = interleaved(
                args.batch_runs, 20, lambda: invoke(batch), lambda: estimator.predict(matrix)
            )

    handler_1, bare_1, scoring_1, health_1 = single
    handler_n, bare_n = many
    print(
        f"model: {loaded.manifest.algorithm} (iris best), "
        f"{args.runs} / {args.batch_runs} runs, interleaved"
    )
    print(f"{'':34}{'p50 us':>10}{'p99 us':>10}")
    for label, timing in [
        ("handler, /predict 1 row", handler_1),
        ("bare predict, 1 row", bare_1),
        ("model_store.predict, 1 row", scoring_1),
        ("handler, /health (no model)", health_1),
        ("handler, /batch_predict 1000", handler_n),
        ("bare predict, 1000 rows", bare_n),
    ]:
        print(f"{label:34}{timing.p50:10.1f}{timing.p99:10.1f}")
    overhead = handler_1.p50 - bare_1.p50
    ratio = handler_n.p50 / bare_n.p50
    print(
        f"\nhandler overhead, 1 row (p50):   {overhead:8.1f} us   target <= 300 us   "
        f"{'PASS' if overhead <= 300 else 'FAIL'}"
    )
    print(
        f"batch of 1000 / bare (p50):      {ratio:8.2f} x    target <= 2x       "
        f"{'PASS' if ratio <= 2 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
