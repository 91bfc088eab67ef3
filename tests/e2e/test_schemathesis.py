"""Schemathesis against the served OpenAPI document, through the local gateway with a key.

Every operation the document lists gets schemathesis' examples, coverage cases and generated
cases (positive and negative), sent over real HTTP to the local API Gateway, which invokes
the function under the RIE. Each answer passes schemathesis' default checks and ours: no
status >= 500, and every 4xx either in the API's error envelope or, where API Gateway
answers before the function (403, 413, 429), in the gateway's own ``{"message": ...}``.

The run is reproducible (derandomized) and bounded: explicit and generated cases, no
shrinking. The test after it prints the number of cases and the time taken (``pytest -s``)
and fails below MIN_CASES.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import Phase, settings
from schemathesis import Case as GenericCase
from schemathesis import CheckContext, Response

from devstack.stack import LocalStack
from model_store.apikeys import create_key, revoke_key

pytestmark = pytest.mark.slow
Case = GenericCase[Any]

KEY_HEADER = "x-api-key"
# Generated cases per operation, on top of its examples and coverage cases. /health and
# /model take no input and run out of distinct cases after a few; the two scoring
# operations make up the run (about 1,080 cases in all).
MAX_EXAMPLES = 480
MIN_CASES = 1000
TIMEOUT = 30.0
GATEWAY_STATUSES = {403, 413, 429}  # where API Gateway answers for itself
MAX_DETAILS = 20  # predict_api.errors.MAX_DETAILS


@dataclass
class FuzzRun:
    """The key, a kept-alive HTTP session, and what the run sent and got."""

    base_url: str
    key: str
    session: requests.Session
    cases: int = 0
    by_operation: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    started: float | None = None
    finished: float | None = None

    def begin(self) -> None:
        if self.started is None:
            self.started = time.perf_counter()

    def record(self, case: Case, response: Response) -> None:
        self.cases += 1
        self.by_operation[case.operation.label] += 1
        self.statuses[response.status_code] += 1
        self.finished = time.perf_counter()


@pytest.fixture(scope="module")
def fuzz_run(stack: LocalStack) -> Iterator[FuzzRun]:
    """A key of its own, in a usage plan of its own with limits the run cannot reach.

    The stack's plan (50 requests/s, a burst of 100) would answer much of the run with 429.
    The gateway enforces this plan as it does any other: the key's path is the real one.
    """
    apigateway = stack.client("apigateway")
    gateway = stack.gateways[0]
    plan = apigateway.create_usage_plan(
        name=f"schemathesis-{uuid.uuid4().hex[:6]}",
        apiStages=[{"apiId": gateway.api_id, "stage": gateway.api.stage}],
        throttle={"rateLimit": 10_000.0, "burstLimit": 10_000},
        quota={"limit": 1_000_000, "period": "DAY"},
    )
    key = create_key(apigateway, plan["id"], f"schemathesis-{uuid.uuid4().hex[:6]}")
    assert key.value is not None
    # One connection for the run: a new one per case (schemathesis' default) costs a third
    # of the run's time.
    with requests.Session() as session:
        try:
            yield FuzzRun(base_url=stack.api_url, key=key.value, session=session)
        finally:
            revoke_key(apigateway, plan["id"], key.id)
            apigateway.delete_usage_plan(usagePlanId=plan["id"])


# schemathesis' default checks, all of them, with one status added to those that reject
# invalid input: more records than a batch may hold is a 413 (too large), by design.
_REJECTION = schemathesis.Config().projects.get_default().checks.negative_data_rejection
CONFIG = {
    "checks": {
        "negative_data_rejection": {
            "expected-statuses": [*(_REJECTION.expected_statuses or []), "413"]
        }
    }
}


@pytest.fixture(scope="module")
def api_schema(fuzz_run: FuzzRun) -> Any:
    """The document the API serves under its stage, fetched through the gateway."""
    schema = schemathesis.openapi.from_url(
        f"{fuzz_run.base_url}/openapi.json",
        config=schemathesis.Config.from_dict(CONFIG),
        headers={KEY_HEADER: fuzz_run.key},
        timeout=TIMEOUT,
    )
    schema.config.update(base_url=fuzz_run.base_url, headers={KEY_HEADER: fuzz_run.key})
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32.5 reads and renames ``request.node._nodeid`` around each operation
    of a lazy schema, an attribute pytest 9.2's nodes no longer have (AttributeError before
    the first case). Given one, the operations run, each reported as a subtest."""
    node: Any = request.node
    if not hasattr(node, "_nodeid"):
        node._nodeid = node.nodeid


def no_server_error(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    assert response.status_code < 500, f"{response.status_code}: {response.content[:500]!r}"
    return None


def errors_in_their_envelope(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """A 4xx is the API's envelope, or API Gateway's own answer where the gateway gives it."""
    if response.status_code < 400:
        return None
    body = json.loads(response.content)
    if "x-amzn-errortype" in response.headers:  # API Gateway answered; no function ran
        assert response.status_code in GATEWAY_STATUSES, response.status_code
        assert set(body) == {"message"}, body
        assert isinstance(body["message"], str)
        return None
    assert set(body) == {"error", "request_id"}, body
    error = body["error"]
    allowed = {"code", "message", "details", "details_omitted"}
    assert {"code", "message", "details"} <= set(error) <= allowed, error
    assert isinstance(error["code"], str)
    assert error["code"]
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["details"], list)
    assert len(error["details"]) <= MAX_DETAILS
    for detail in error["details"]:
        assert set(detail) == {"loc", "msg", "type"}, detail
    assert body["request_id"] == response.headers["x-request-id"][0]
    return None


def undeclared_methods_answer_as_api_gateway(
    ctx: CheckContext, response: Response, case: Case
) -> bool | None:
    """Replaces schemathesis' `unsupported_method`, which wants a 405: API Gateway answers a
    method that a path does not declare with 403 Missing Authentication Token, without
    calling the function (so even on /health, which needs no key)."""
    if case.method.upper() == case.operation.method.upper():
        return None
    assert response.status_code == 403, response.status_code
    assert json.loads(response.content) == {"message": "Missing Authentication Token"}
    return None


def schema_valid_input_is_scored(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """schemathesis' `positive_data_acceptance`, except for one answer the API gives by
    design: finite numbers the model cannot score (its output overflows) are a 422 whose
    details all say ``unscorable``. No JSON schema can say which finite numbers those are."""
    if response.status_code == 422:
        details = json.loads(response.content)["error"]["details"]
        if details and all(detail["type"] == "unscorable" for detail in details):
            return None
    verdict: bool | None = schemathesis.checks.positive_data_acceptance(ctx, response, case)
    return verdict


@schema.parametrize()
@pytest.mark.usefixtures("_node_id_for_schemathesis")
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
)
def test_every_operation_keeps_the_contract(case: Case, fuzz_run: FuzzRun) -> None:
    fuzz_run.begin()
    response = case.call(session=fuzz_run.session, timeout=TIMEOUT)
    fuzz_run.record(case, response)
    case.validate_response(
        response,
        additional_checks=[
            no_server_error,
            errors_in_their_envelope,
            undeclared_methods_answer_as_api_gateway,
            schema_valid_input_is_scored,
        ],
        excluded_checks=[
            schemathesis.checks.unsupported_method,
            schemathesis.checks.positive_data_acceptance,
        ],
        transport_kwargs={"session": fuzz_run.session, "timeout": TIMEOUT},
    )


def test_the_run_made_enough_cases_and_no_server_errors(fuzz_run: FuzzRun) -> None:
    if fuzz_run.started is None or fuzz_run.finished is None:
        pytest.skip("the schemathesis run was not part of this session")
    seconds = fuzz_run.finished - fuzz_run.started
    summary = (
        f"schemathesis: {fuzz_run.cases} cases in {seconds:.1f} s; by operation "
        f"{dict(fuzz_run.by_operation)}; statuses {dict(sorted(fuzz_run.statuses.items()))}"
    )
    print(f"\n{summary}")
    assert fuzz_run.cases >= MIN_CASES, summary
    assert all(status < 500 for status in fuzz_run.statuses), summary
