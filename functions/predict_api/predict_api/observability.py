"""Structured logs and EMF metrics (Powertools for AWS Lambda), one instance each.

The service name and the metric namespace are POWERTOOLS_SERVICE_NAME and
POWERTOOLS_METRICS_NAMESPACE (the template sets both), SERVICE and NAMESPACE where they are
unset or empty (tests, benchmarks). They are read here because Powertools prefers an
explicit ``service=`` or ``namespace=`` argument to its variable: passing the constants
would leave the template's values dead. POWERTOOLS_LOG_LEVEL is Powertools' own to read.

Metrics (the template's dashboard draws them by these names):

- ``Predictions`` (records scored) and ``BatchSize`` (records of a /batch_predict), by
  ``model_version``: the version in service;
- ``ModelLoadSeconds``, by ``model_version``: each load of a model (cold, or a promote);
- ``ColdStart``, by ``function_name`` and ``service`` as Powertools' own cold-start metric:
  1 on the first invocation of an execution environment.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

from model_store.aws import quiet_sdk_loggers

SERVICE = "predict-api"
NAMESPACE = "SklearnServerless"
PREDICTIONS = "Predictions"
BATCH_SIZE = "BatchSize"
MODEL_LOAD_SECONDS = "ModelLoadSeconds"
COLD_START = "ColdStart"
MODEL_VERSION = "model_version"  # the dimension of the three above but ColdStart

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or SERVICE)
metrics = Metrics(
    service=logger.service,
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE,
)
# model_store logs through the standard library; give it the same JSON format and keys.
copy_config_to_registered_loggers(source_logger=logger, include={"model_store"})
quiet_sdk_loggers()

# True until this execution environment's first flush. An environment of provisioned
# concurrency was initialised before any request: Powertools counts no cold start there.
_cold_start = os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") != "provisioned-concurrency"


def record_prediction(model_version: str, rows: int, batch: bool) -> None:
    metrics.add_dimension(name=MODEL_VERSION, value=model_version)
    metrics.add_metric(name=PREDICTIONS, unit=MetricUnit.Count, value=rows)
    if batch:
        metrics.add_metric(name=BATCH_SIZE, unit=MetricUnit.Count, value=rows)


def record_model_load(model_version: str, seconds: float) -> None:
    metrics.add_dimension(name=MODEL_VERSION, value=model_version)
    metrics.add_metric(name=MODEL_LOAD_SECONDS, unit=MetricUnit.Seconds, value=seconds)


def record_cold_start(service: str, namespace: str) -> None:
    """``ColdStart`` 1 in an EMF document of its own, as Powertools' log_metrics(
    capture_cold_start_metric=True) writes it: its dimensions are not the invocation's."""
    name = os.environ.get("POWERTOOLS_METRICS_FUNCTION_NAME") or os.environ.get(
        "AWS_LAMBDA_FUNCTION_NAME"
    )
    with single_metric(
        name=COLD_START, unit=MetricUnit.Count, value=1, namespace=namespace
    ) as metric:
        if name:  # always, in Lambda and under the emulator
            metric.add_dimension(name="function_name", value=name)
        metric.add_dimension(name="service", value=service)


def flush_metrics() -> None:
    """Emit this invocation's metrics, if any (an empty flush only warns), and the
    environment's cold start once. Warm, this costs one global read over the flush."""
    global _cold_start
    if metrics.metric_set:
        metrics.flush_metrics()
    if _cold_start:
        _cold_start = False
        record_cold_start(metrics.service, metrics.namespace)
