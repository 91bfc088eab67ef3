"""Structured logs and EMF metrics for a function (Powertools for AWS Lambda): one setup
shared by both functions.

The service name and the metric namespace are POWERTOOLS_SERVICE_NAME and
POWERTOOLS_METRICS_NAMESPACE (the template sets both), the function's own service name and
NAMESPACE where they are unset or empty (tests, benchmarks). They are read here because
Powertools prefers an explicit ``service=`` or ``namespace=`` argument to its variable:
passing constants would leave the template's values dead. POWERTOOLS_LOG_LEVEL is
Powertools' own to read.

``ColdStart`` (by ``function_name`` and ``service``, as Powertools' own cold-start metric)
is 1 on the first flush of an execution environment, in an EMF document of its own.

Only the functions import this module (Powertools is in their layers, not a dependency
of the tools).
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

from model_store.aws import quiet_sdk_loggers

NAMESPACE = "SklearnServerless"
COLD_START = "ColdStart"


class FunctionTelemetry:
    """A function's Logger and Metrics, and whether its environment has flushed yet.

    Made once per module import (an execution environment's init, or a test's reload), so
    each reads the environment afresh.
    """

    def __init__(self, service: str) -> None:
        self.logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or service)
        self.metrics = Metrics(
            service=self.logger.service,
            namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE,
        )
        # model_store logs through the standard library: the same JSON format and keys.
        copy_config_to_registered_loggers(source_logger=self.logger, include={"model_store"})
        quiet_sdk_loggers()
        # An environment of provisioned concurrency was initialised before any request:
        # Powertools counts no cold start there.
        self.cold_start = (
            os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") != "provisioned-concurrency"
        )

    def flush(self) -> None:
        """Emit this invocation's metrics, if any (an empty flush only warns), and the
        environment's cold start once. Warm, this costs one attribute read over the flush."""
        if self.metrics.metric_set:
            self.metrics.flush_metrics()
        if self.cold_start:
            self.cold_start = False
            record_cold_start(self.metrics.service, self.metrics.namespace)


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
