"""The batch function's EMF metrics: their names, and what one scored object emits.

The Logger and Metrics are made by the handler module at import (so a new environment, and
a test's reload, reads POWERTOOLS_LOG_LEVEL afresh), with service_name() and
metrics_namespace(): POWERTOOLS_SERVICE_NAME and POWERTOOLS_METRICS_NAMESPACE (the template
sets both), SERVICE and NAMESPACE where they are unset or empty. Powertools prefers an
explicit argument to its variable, so the variables are read here.

Metrics (the template's dashboard draws them by these names):

- ``RowsScored`` and ``RowsFailed`` of each object scored, by ``model_version``;
- ``PSI`` of each feature of each object scored, by ``feature``, one EMF document per
  feature (the dimensions of one document apply to all its metrics); none for an object
  with too few scored rows for a drift signal (model_store's MIN_DRIFT_ROWS), whose PSI
  is sampling noise;
- ``ColdStart``, by ``function_name`` and ``service`` as Powertools' own cold-start metric:
  1 on the first invocation of an execution environment.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit

from model_store.batch import BatchReport
from model_store.batch.report import MIN_DRIFT_ROWS

SERVICE = "batch-scoring"
NAMESPACE = "SklearnServerless"
ROWS_SCORED = "RowsScored"
ROWS_FAILED = "RowsFailed"
PSI = "PSI"
COLD_START = "ColdStart"
MODEL_VERSION = "model_version"  # the dimension of RowsScored and RowsFailed
FEATURE = "feature"  # the dimension of PSI

# True until this execution environment's first flush. An environment of provisioned
# concurrency was initialised before any event: Powertools counts no cold start there.
_cold_start = os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") != "provisioned-concurrency"


def service_name() -> str:
    return os.environ.get("POWERTOOLS_SERVICE_NAME") or SERVICE


def metrics_namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE


def record_report(metrics: Metrics, report: BatchReport) -> None:
    """The metrics of one object scored by a model (a rejected file names none)."""
    if not report.model:
        return
    metrics.add_dimension(name=MODEL_VERSION, value=report.model.version)
    metrics.add_metric(name=ROWS_SCORED, unit=MetricUnit.Count, value=report.rows_scored)
    metrics.add_metric(name=ROWS_FAILED, unit=MetricUnit.Count, value=report.rows_failed)
    drift = report.drift
    if drift is None or drift.rows < MIN_DRIFT_ROWS:
        return
    for feature, feature_drift in drift.features.items():
        with single_metric(
            name=PSI, unit=MetricUnit.NoUnit, value=feature_drift.psi, namespace=metrics.namespace
        ) as metric:
            metric.add_dimension(name=FEATURE, value=feature)
            metric.add_dimension(name="service", value=metrics.service)


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


def flush_metrics(metrics: Metrics) -> None:
    """Emit this invocation's metrics, if any, and the environment's cold start once."""
    global _cold_start
    if metrics.metric_set:
        metrics.flush_metrics()
    if _cold_start:
        _cold_start = False
        record_cold_start(metrics.service, metrics.namespace)
