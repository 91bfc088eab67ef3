"""The API's logs and EMF metrics: model_store's one setup, and what a request emits.

Metrics (the template's dashboard draws them by these names):

- ``Predictions`` (records scored) and ``BatchSize`` (records of a /batch_predict), by
  ``model_version``: the version in service;
- ``ModelLoadSeconds``, by ``model_version``: each load of a model (cold, or a promote);
- ``ColdStart`` (model_store.observability), once per execution environment.
"""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from model_store.observability import COLD_START, NAMESPACE, FunctionTelemetry

__all__ = ["COLD_START", "NAMESPACE", "flush_metrics", "logger", "metrics"]

SERVICE = "predict-api"
PREDICTIONS = "Predictions"
BATCH_SIZE = "BatchSize"
MODEL_LOAD_SECONDS = "ModelLoadSeconds"
MODEL_VERSION = "model_version"  # the dimension of the three above

telemetry = FunctionTelemetry(SERVICE)
logger = telemetry.logger
metrics = telemetry.metrics


def record_prediction(model_version: str, rows: int, batch: bool) -> None:
    metrics.add_dimension(name=MODEL_VERSION, value=model_version)
    metrics.add_metric(name=PREDICTIONS, unit=MetricUnit.Count, value=rows)
    if batch:
        metrics.add_metric(name=BATCH_SIZE, unit=MetricUnit.Count, value=rows)


def record_model_load(model_version: str, seconds: float) -> None:
    metrics.add_dimension(name=MODEL_VERSION, value=model_version)
    metrics.add_metric(name=MODEL_LOAD_SECONDS, unit=MetricUnit.Seconds, value=seconds)


def flush_metrics() -> None:
    """This request's metrics, and the environment's cold start once."""
    telemetry.flush()
