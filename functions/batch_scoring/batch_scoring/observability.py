"""The batch function's EMF metrics: their names, and what one scored object emits.

The Logger and Metrics come from model_store's one setup (FunctionTelemetry), made by the
handler module at import (so a new environment, and a test's reload, reads
POWERTOOLS_LOG_LEVEL afresh).

Metrics (the template's dashboard draws them by these names):

- ``RowsScored`` and ``RowsFailed`` of each object scored, by ``model_version``;
- ``PSI`` of each feature of each object scored, by ``feature``, one EMF document per
  feature (the dimensions of one document apply to all its metrics); none for an object
  with too few scored rows for a drift signal (model_store's MIN_DRIFT_ROWS), whose PSI
  is sampling noise;
- ``ColdStart`` (model_store.observability), once per execution environment.
"""

from __future__ import annotations

from aws_lambda_powertools import Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit

from model_store.batch import BatchReport
from model_store.batch.report import MIN_DRIFT_ROWS
from model_store.observability import COLD_START, NAMESPACE

__all__ = ["COLD_START", "NAMESPACE", "record_report"]

SERVICE = "batch-scoring"
ROWS_SCORED = "RowsScored"
ROWS_FAILED = "RowsFailed"
PSI = "PSI"
MODEL_VERSION = "model_version"  # the dimension of RowsScored and RowsFailed
FEATURE = "feature"  # the dimension of PSI


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
