"""Structured logs and EMF metrics (Powertools for AWS Lambda), one instance each."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

from model_store.aws import quiet_sdk_loggers

SERVICE = "predict-api"

# POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE / POWERTOOLS_LOG_LEVEL override.
logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace="SklearnServerless")
# model_store logs through the standard library; give it the same JSON format and keys.
copy_config_to_registered_loggers(source_logger=logger, include={"model_store"})
quiet_sdk_loggers()


def record_prediction(model_version: str, rows: int, batch: bool) -> None:
    metrics.add_dimension(name="model_version", value=model_version)
    metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=rows)
    if batch:
        metrics.add_metric(name="BatchSize", unit=MetricUnit.Count, value=rows)


def record_model_load(model_version: str, seconds: float) -> None:
    metrics.add_dimension(name="model_version", value=model_version)
    metrics.add_metric(name="ModelLoadTime", unit=MetricUnit.Milliseconds, value=seconds * 1e3)


def flush_metrics() -> None:
    """Emit this invocation's metrics, if any (an empty flush only warns)."""
    if metrics.metric_set:
        metrics.flush_metrics()
