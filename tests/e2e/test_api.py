"""The prediction API through the local gateway and the RIE, over real HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest

from devstack.stack import LocalStack
from model_store import Artifact
from model_store.apikeys import create_key, revoke_key
from tests.support.events import load_event
from tests.support.local_stack import REFRESH_SECONDS, Response, model_record, registry_of, request

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def predict(stack: LocalStack, key: str | None, body: dict[str, Any] | None = None) -> Response:
    headers = {"x-api-key": key} if key is not None else {}
    return request(f"{stack.api_url}/predict", "POST", body=body or model_record(), headers=headers)


def eventually(check: object, *, timeout: float = 10.0, interval: float = 0.2) -> None:
    """Polls CHECK (a callable returning bool) until true: for changes AWS also applies lazily."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not true within {timeout} s: {getattr(check, '__doc__', check)}")
        time.sleep(interval)


def test_predict_with_the_stack_key_answers_the_iris_class(stack: LocalStack) -> None:
    response = predict(stack, stack.api_key)
    assert response.status == 200, response.body
    body = response.json()
    assert body["prediction"] == "setosa"
    assert set(body["probabilities"]) == {"setosa", "versicolor", "virginica"}
    assert body["model"]["name"] == "iris"
    # The request id the function saw is the gateway's, returned to the client too.
    assert response.headers["x-amzn-requestid"] == body["request_id"]


def test_batch_predict_answers_one_prediction_per_record(stack: LocalStack) -> None:
    records = json.loads(load_event("batch_predict.json")["body"])
    response = request(
        f"{stack.api_url}/batch_predict", "POST", body=records, headers={"x-api-key": stack.api_key}
    )
    assert response.status == 200, response.body
    predictions = [p["prediction"] for p in response.json()["predictions"]]
    assert predictions == ["setosa", "versicolor", "virginica"]


@pytest.mark.parametrize(
    "key", [None, "", "not-a-key-of-this-stack-0123456789"], ids=["none", "empty", "unknown"]
)
def test_requests_without_a_valid_key_are_forbidden(stack: LocalStack, key: str | None) -> None:
    response = predict(stack, key)
    assert response.status == 403
    assert response.json() == {"message": "Forbidden"}
    assert response.headers["x-amzn-errortype"] == "ForbiddenException"


def test_a_revoked_key_is_forbidden(stack: LocalStack) -> None:
    apigateway = stack.client("apigateway")
    key = create_key(apigateway, stack.usage_plan_id, f"e2e-{uuid.uuid4().hex[:6]}")
    assert key.value is not None
    assert predict(stack, key.value).status == 200
    revoke_key(apigateway, stack.usage_plan_id, key.id)

    def forbidden() -> bool:
        """the revoked key gets 403"""
        return predict(stack, key.value).status == 403

    eventually(forbidden, timeout=5)


def test_a_key_made_with_the_cli_against_the_local_endpoint_works(stack: LocalStack) -> None:
    environment = {
        **os.environ,
        "AWS_ENDPOINT_URL": stack.s3_endpoint,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": stack.config.region,
    }
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "model_store.cli",
            "keys",
            "create",
            "e2e-cli",
            "--json",
            "--stack",
            stack.config.stack_name,
        ],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    value = json.loads(created.stdout)["value"]
    assert predict(stack, value).status == 200


def test_health_needs_no_key(stack: LocalStack) -> None:
    response = request(f"{stack.api_url}/health")
    assert response.status == 200
    assert response.json()["status"] == "ok"


def test_a_browser_opens_the_docs_without_a_key_and_calls_predict_with_one(
    stack: LocalStack,
) -> None:
    # What a browser does (no JavaScript runs here): load /docs with no key, fetch the
    # OpenAPI URL the page names, then send /predict with the header the document's
    # security scheme declares, as Swagger's Authorize and Try it out do.
    docs = request(f"{stack.api_url}/docs")
    assert docs.status == 200, docs.body
    assert docs.headers["content-type"].startswith("text/html")
    named = re.search(r'url: "([^"]+)"', docs.body.decode())
    assert named is not None, docs.body
    origin = stack.api_url.rsplit("/", 1)[0]
    openapi_url = urljoin(f"{stack.api_url}/docs", named[1])
    stage = stack.gateways[0].api.stage
    assert openapi_url == f"{origin}/{stage}/openapi.json"

    spec = request(openapi_url)
    assert spec.status == 200, spec.body
    document = spec.json()
    schemas = json.dumps(document["components"]["schemas"])
    for feature in model_record():
        assert feature in schemas
    operation = document["paths"]["/predict"]["post"]
    [[scheme_name]] = [list(requirement) for requirement in operation["security"]]
    scheme = document["components"]["securitySchemes"][scheme_name]
    assert (scheme["type"], scheme["in"]) == ("apiKey", "header")

    called = request(
        f"{origin}/{stage}/predict",
        "POST",
        body=operation["requestBody"]["content"]["application/json"]["example"],
        headers={scheme["name"]: stack.api_key},
    )
    assert called.status == 200, called.body
    assert request(f"{stack.api_url}/model").status == 403  # the model's internals: keyed


def test_unknown_routes_and_methods_get_missing_authentication_token(stack: LocalStack) -> None:
    base = stack.api_url.rsplit("/", 1)[0]
    for method, url in (
        ("GET", f"{stack.api_url}/nope"),
        ("GET", f"{stack.api_url}/predict"),  # declared for POST only
        ("POST", f"{base}/predict"),  # no stage
    ):
        response = request(url, method, headers={"x-api-key": stack.api_key})
        assert response.status == 403, (method, url)
        assert response.json() == {"message": "Missing Authentication Token"}


def test_a_body_over_ten_megabytes_is_refused_before_the_function(stack: LocalStack) -> None:
    body = b'{"x": "' + b"a" * (10 * 1024 * 1024) + b'"}'
    response = request(
        f"{stack.api_url}/predict", "POST", body=body, headers={"x-api-key": stack.api_key}
    )
    assert response.status == 413
    assert response.json() == {"message": "Request Too Long"}


def _key_in_new_plan(stack: LocalStack, **plan: object) -> str:
    apigateway = stack.client("apigateway")
    gateway = stack.gateways[0]
    created = apigateway.create_usage_plan(
        name=f"e2e-{uuid.uuid4().hex[:6]}",
        apiStages=[{"apiId": gateway.api_id, "stage": gateway.api.stage}],
        **plan,
    )
    key = apigateway.create_api_key(name=f"e2e-{uuid.uuid4().hex[:6]}", enabled=True)
    apigateway.create_usage_plan_key(usagePlanId=created["id"], keyId=key["id"], keyType="API_KEY")
    return str(key["value"])


def test_the_usage_plan_throttle_answers_429(stack: LocalStack) -> None:
    key = _key_in_new_plan(stack, throttle={"rateLimit": 0.1, "burstLimit": 2})
    statuses = [predict(stack, key) for _ in range(4)]
    assert [r.status for r in statuses[:2]] == [200, 200]
    assert [r.status for r in statuses[2:]] == [429, 429]
    assert statuses[-1].json() == {"message": "Too Many Requests"}


def test_the_usage_plan_quota_answers_429(stack: LocalStack) -> None:
    key = _key_in_new_plan(stack, quota={"limit": 2, "period": "DAY"})
    statuses = [predict(stack, key).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert predict(stack, key).json() == {"message": "Limit Exceeded"}


def served_version(stack: LocalStack) -> str:
    response = predict(stack, stack.api_key)
    assert response.status == 200, response.body
    version: str = response.json()["model"]["version"]
    return version


def test_a_promotion_is_served_after_the_refresh_and_a_rollback_restores(
    stack: LocalStack, iris_artifact_2: Artifact
) -> None:
    models = registry_of(stack)
    assert served_version(stack) == "1"
    models.publish(iris_artifact_2, name="iris", version="2")
    models.promote("iris", "2")

    def serves_2() -> bool:
        """version 2 is served"""
        return served_version(stack) == "2"

    # Every warm environment re-reads the alias after the refresh interval.
    eventually(serves_2, timeout=REFRESH_SECONDS + 10)
    models.rollback("iris")

    def serves_1() -> bool:
        """version 1 is served again"""
        return served_version(stack) == "1"

    eventually(serves_1, timeout=REFRESH_SECONDS + 10)


def test_a_crashed_function_gives_502_and_the_next_request_succeeds(stack: LocalStack) -> None:
    assert predict(stack, stack.api_key).status == 200
    pool = stack.pools["PredictApiFunction"]
    killed = [pid for env in pool.environments for pid in env.runtime_pids()]
    assert killed, "no warm environment to crash"
    cold_starts = pool.cold_starts
    for pid in killed:
        os.kill(pid, signal.SIGKILL)

    first = predict(stack, stack.api_key)
    assert first.status == 502
    assert first.json() == {"message": "Internal server error"}
    # Each crashed environment fails its next request and is replaced, as Lambda does.
    answers = [first]
    while answers[-1].status != 200 and len(answers) <= len(killed) + 1:
        answers.append(predict(stack, stack.api_key))
    assert answers[-1].status == 200
    assert {r.status for r in answers[:-1]} == {502}
    assert pool.cold_starts > cold_starts
