"""moto's Step Functions interpreter, made to run this project's state machines locally.

moto 5 ships an interpreter of the States Language (Task, Choice, Map, Distributed Map,
Retry, Catch) that runs executions when its `execute_state_machine` setting is on. Two
things keep it from running ours as AWS would, and are changed here, in the moto server's
own process (devstack.moto_server):

- Its tasks make their clients with `boto_client_for`, pointed at the moto server itself,
  whose Lambda needs Docker. The replacement sends Lambda calls to devstack's Lambda
  Invoke endpoint (devstack.lambda_api), the rest (an ItemReader's S3 reads) to moto.
- Its Distributed Map counts a failed child and carries on: the Map succeeds, with null
  for that item, whatever the tolerance. AWS fails the Map Run once the failed items
  exceed ToleratedFailureCount/ToleratedFailurePercentage (both 0 by default), with
  States.ExceedToleratedFailureThreshold, which the Map state's Retry and Catch see.

Both are moto internals: a moto without them raises MotoInternalsError at startup.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import boto3
from botocore.config import Config

_PARSER = "moto.stepfunctions.parser"
_FACTORY = "boto_client_for"
_FACTORY_MODULE = f"{_PARSER}.asl.utils.boto_client"
_TASKS = f"{_PARSER}.asl.component.state.exec.state_task"
# The modules that import the factory by name and may ask it for Lambda: lambda:invoke and
# Lambda ARN tasks, and aws-sdk:lambda:* tasks. The other importers get the replacement
# too (it replaces the factory before they load, and in those already loaded).
_LAMBDA_CALLERS = (f"{_TASKS}.lambda_eval_utils", f"{_TASKS}.service.state_task_service_aws_sdk")
_MAP = f"{_PARSER}.asl.component.state.exec.state_map.iteration"
_MAP_RUN = f"{_MAP}.distributed_iteration_component"
_MAP_RUN_RECORD = f"{_MAP}.itemprocessor.map_run_record"
# A Map wider than a function's environments queues at the endpoint (where Lambda would
# throttle), and a function may run for Lambda's 15 minutes: the client waits an hour.
LAMBDA_READ_TIMEOUT = 3600.0
# moto's own factory waits as long as a task may run (its default TimeoutSeconds).
SERVICE_READ_TIMEOUT = 99_999_999.0
EXCEEDED = "States.ExceedToleratedFailureThreshold"
EXCEEDED_CAUSE = "The specified tolerated failure threshold was exceeded"


class MotoInternalsError(RuntimeError):
    """This moto lacks what is replaced here: moto drifted from the pinned version."""


def enable(lambda_endpoint: str, moto_endpoint: str) -> None:
    """Turn the interpreter on, with Lambda at LAMBDA_ENDPOINT and AWS's Map tolerance."""
    from moto.core.config import default_user_config

    settings: Any = default_user_config.get("stepfunctions")
    if not isinstance(settings, dict) or "execute_state_machine" not in settings:
        raise MotoInternalsError("moto's config has no stepfunctions.execute_state_machine")
    settings["execute_state_machine"] = True
    _module(f"{_PARSER}.models")  # the backend StartExecution then reaches
    replace_client_factory(client_factory(lambda_endpoint, moto_endpoint))
    enforce_map_tolerance()


def client_factory(lambda_endpoint: str, moto_endpoint: str) -> Callable[..., Any]:
    """A boto_client_for that sends Lambda to LAMBDA_ENDPOINT, the rest to MOTO_ENDPOINT."""

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        is_lambda = service == "lambda"
        return boto3.client(
            service,  # type: ignore[call-overload]
            region_name=region,
            endpoint_url=lambda_endpoint if is_lambda else moto_endpoint,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto and devstack take any
            config=Config(
                parameter_validation=False,
                # A state's Retry retries; the client must not add attempts of its own.
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=5,
                read_timeout=LAMBDA_READ_TIMEOUT if is_lambda else SERVICE_READ_TIMEOUT,
            ),
        )

    return boto_client_for


def replace_client_factory(factory: Callable[..., Any]) -> None:
    home = _module(_FACTORY_MODULE)
    original = getattr(home, _FACTORY, None)
    if not callable(original):
        raise MotoInternalsError(f"{_FACTORY_MODULE} has no {_FACTORY}")
    setattr(home, _FACTORY, factory)
    for module in list(sys.modules.values()):
        if getattr(module, _FACTORY, None) is original:
            setattr(module, _FACTORY, factory)
    for name in _LAMBDA_CALLERS:
        if getattr(_module(name), _FACTORY, None) is not factory:
            raise MotoInternalsError(f"{name} does not call {_FACTORY_MODULE}.{_FACTORY}")


def tolerance_exceeded(failed: int, total: int, count: int, percentage: float) -> bool:
    """Whether FAILED of TOTAL items fail the Map Run. moto does not say which fields were
    declared (an absent one is 0), so a run fails when it exceeds both: any failure with
    neither declared, and the declared one's limit with one (with both declared, AWS fails
    the run when either is exceeded; this one waits for both)."""
    return failed > count and failed * 100 > percentage * total


def enforce_map_tolerance() -> None:
    component: Any = getattr(_module(_MAP_RUN), "DistributedIterationComponent", None)
    map_run = getattr(component, "_map_run", None)
    if component is None or map_run is None:
        raise MotoInternalsError(f"{_MAP_RUN} has no DistributedIterationComponent._map_run")
    if getattr(map_run, "enforces_tolerance", False):
        return
    _check_counters()
    failure = _failure_event_maker()

    def _map_run(self: Any, env: Any, eval_input: Any) -> None:
        map_run(self, env, eval_input)
        record = eval_input.map_run_record
        items = record.item_counter
        failed = items.failed.get() + items.timed_out.get()
        if tolerance_exceeded(
            failed,
            items.total.get(),
            record.tolerated_failure_count,
            record.tolerated_failure_percentage,
        ):
            env.stack.pop()  # the items' outputs: the Map state fails instead
            raise failure(env)

    _map_run.enforces_tolerance = True  # type: ignore[attr-defined]
    component._map_run = _map_run


def _check_counters() -> None:
    """A map run record has the item counters the tolerance reads."""
    record_type: Any = getattr(_module(_MAP_RUN_RECORD), "MapRunRecord", None)
    try:
        record = record_type(
            state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:probe",
            execution_arn="arn:aws:states:us-east-1:123456789012:execution:probe:probe",
            max_concurrency=0,
            tolerated_failure_count=0,
            tolerated_failure_percentage=0.0,
            label=None,
        )
        for counter in ("failed", "timed_out", "total"):
            getattr(record.item_counter, counter).get()
    except (TypeError, AttributeError) as exc:
        raise MotoInternalsError(f"{_MAP_RUN_RECORD}.MapRunRecord changed: {exc}") from None


def _failure_event_maker() -> Callable[[Any], Exception]:
    """The FailureEventException a Map state fails with when its run exceeds tolerance."""
    try:
        from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
        from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
            FailureEvent,
            FailureEventException,
        )
        from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
            StatesErrorName,
        )
        from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (  # noqa: E501
            StatesErrorNameType,
        )
        from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

        error_name = StatesErrorNameType.StatesExceedToleratedFailureThreshold
        event_type = HistoryEventType.MapStateFailed
        # moto's own events carry one kind of details each, as this one (its TypedDict
        # wants them all).
        event_details: Any = EventDetails
    except (ImportError, AttributeError) as exc:
        raise MotoInternalsError(f"moto's Step Functions failure events changed: {exc}") from None

    def failure(env: Any) -> Exception:
        details = ExecutionFailedEventDetails(error=EXCEEDED, cause=EXCEEDED_CAUSE)
        event = FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=error_name),
            event_type=event_type,
            event_details=event_details(executionFailedEventDetails=details),
        )
        exception: Exception = FailureEventException(failure_event=event)
        return exception

    return failure


def _module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MotoInternalsError(f"moto has no module {name} ({exc})") from None
