"""The API function's EMF metrics and the Powertools variables the template sets.

EMF documents are what Lambda's log stream receives: JSON lines on stdout, read back here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from predict_api import observability
from tests.support.events import load_event

ROOT = Path(__file__).resolve().parents[3]


def _json_lines(text: str) -> list[dict[str, Any]]:
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            data = json.loads(line)
            if isinstance(data, dict):
                found.append(data)
    return found


def _emf(text: str) -> list[dict[str, Any]]:
    return [d for d in _json_lines(text) if "_aws" in d]


def _directive(document: dict[str, Any]) -> dict[str, Any]:
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert isinstance(directive, dict)
    return directive


def _units(document: dict[str, Any]) -> dict[str, str]:
    return {m["Name"]: m["Unit"] for m in _directive(document)["Metrics"]}


def _dimension_sets(document: dict[str, Any]) -> list[list[str]]:
    return [sorted(names) for names in _directive(document)["Dimensions"]]


def _with_metric(documents: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [d for d in documents if name in _units(d)]


# -- the template's Powertools variables -----------------------------------------------------

# Imported in a fresh interpreter, as a new execution environment imports it: the service
# and namespace are fixed at import. Two flushes: a cold invocation, then a warm one.
EMIT = """
from predict_api import observability as o
o.logger.info("hello")
o.record_prediction("7", 2, batch=False)
o.flush_metrics()
o.record_prediction("7", 1, batch=False)
o.flush_metrics()
"""


def _import_and_emit(**variables: str) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "PYTEST_"))}
    env.pop("AWS_LAMBDA_INITIALIZATION_TYPE", None)
    env.update(variables)
    result = subprocess.run(
        [sys.executable, "-c", EMIT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return _json_lines(result.stdout)


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
@pytest.mark.parametrize(
    ("variables", "service", "namespace"),
    [
        pytest.param(
            {
                "POWERTOOLS_SERVICE_NAME": "predict-api-staging",
                "POWERTOOLS_METRICS_NAMESPACE": "Staging/Sklearn",
            },
            "predict-api-staging",
            "Staging/Sklearn",
            id="set",
        ),
        pytest.param(
            {"POWERTOOLS_SERVICE_NAME": "", "POWERTOOLS_METRICS_NAMESPACE": ""},
            "predict-api",
            "SklearnServerless",
            id="empty-means-the-default",
        ),
    ],
)
def test_the_powertools_variables_name_the_service_and_the_namespace(
    variables: dict[str, str], service: str, namespace: str
) -> None:
    lines = _import_and_emit(AWS_LAMBDA_FUNCTION_NAME="stack-predict-api", **variables)

    [log] = [line for line in lines if line.get("message") == "hello"]
    assert log["service"] == service
    documents = [line for line in lines if "_aws" in line]
    assert len(_with_metric(documents, "Predictions")) == 2
    assert len(_with_metric(documents, "ColdStart")) == 1
    for document in documents:
        assert _directive(document)["Namespace"] == namespace
        assert document["service"] == service


def test_under_provisioned_concurrency_no_cold_start_is_counted() -> None:
    """The environment was initialised before any request (Powertools' rule too)."""
    lines = _import_and_emit(AWS_LAMBDA_INITIALIZATION_TYPE="provisioned-concurrency")

    documents = [line for line in lines if "_aws" in line]
    assert len(_with_metric(documents, "Predictions")) == 2
    assert _with_metric(documents, "ColdStart") == []


# -- the metrics of invocations ------------------------------------------------------------


def test_the_first_invocation_of_an_environment_counts_one_cold_start(
    monkeypatch: pytest.MonkeyPatch,
    handler_module: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(observability.telemetry, "cold_start", True)  # a new execution environment
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", lambda_context.function_name)
    capsys.readouterr()

    handler_module.handler(load_event("health.json"), lambda_context)  # predicts nothing
    first = _emf(capsys.readouterr().out)
    handler_module.handler(load_event("predict.json"), lambda_context)
    second = _emf(capsys.readouterr().out)

    [document] = first
    assert _directive(document)["Namespace"] == "SklearnServerless"
    assert _units(document) == {"ColdStart": "Count"}
    # Powertools' own cold-start dimensions, not the invocation's (no model_version).
    assert _dimension_sets(document) == [["function_name", "service"]]
    assert (document["function_name"], document["service"]) == (
        lambda_context.function_name,
        "predict-api",
    )
    assert document["ColdStart"] == [1.0]
    assert _with_metric(second, "ColdStart") == []
    assert len(_with_metric(second, "Predictions")) == 1


def test_model_load_time_is_emitted_in_seconds_by_model_version(
    monkeypatch: pytest.MonkeyPatch,
    handler_module: ModuleType,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(observability.telemetry, "cold_start", False)
    capsys.readouterr()

    handler_module.handler(load_event("predict.json"), lambda_context)
    first = _emf(capsys.readouterr().out)
    handler_module.handler(load_event("batch_predict.json"), lambda_context)
    second = _emf(capsys.readouterr().out)

    loaded = handler_module.app.state.service.loader.current
    [document] = first
    assert _units(document) == {
        "Predictions": "Count",
        "ModelLoadSeconds": "Seconds",
    }
    assert _dimension_sets(document) == [["model_version", "service"]]
    assert (document["model_version"], document["service"]) == ("1", "predict-api")
    assert document["ModelLoadSeconds"] == [loaded.load_seconds]  # seconds, not ms
    assert document["Predictions"] == [1.0]
    # Warm: the model stays loaded; predictions per model version go on.
    [warm] = second
    assert _units(warm) == {"Predictions": "Count", "BatchSize": "Count"}
    assert (warm["model_version"], warm["Predictions"], warm["BatchSize"]) == ("1", [3.0], [3.0])
