"""model-store keys: create (value shown once), list, revoke, against moto's API Gateway."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

from model_store.apikeys import list_keys
from tests.support.cli import assert_clean_error, ok, run


@pytest.fixture(autouse=True)
def aws_on_moto(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every client, the CLI's included, talks to the session's moto server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)


@pytest.fixture
def usage_plan() -> str:
    """A new usage plan of its own (the server is shared: no test sees another's keys)."""
    plan = boto3.client("apigateway").create_usage_plan(
        name=f"plan-{uuid.uuid4().hex[:8]}",
        throttle={"rateLimit": 5, "burstLimit": 10},
        quota={"limit": 100, "period": "DAY"},
    )
    return plan["id"]


def test_create_list_and_revoke_keys_by_usage_plan(usage_plan: str) -> None:
    created = json.loads(ok("keys", "create", "analyst-1", "--usage-plan", usage_plan, "--json"))
    assert created["value"]  # shown once, at creation
    human = ok("keys", "create", "analyst-2", "--usage-plan", usage_plan)
    assert "shown only now" in human

    listed = json.loads(ok("keys", "list", "--usage-plan", usage_plan, "--json"))
    assert sorted(k["name"] for k in listed) == ["analyst-1", "analyst-2"]
    assert all("value" not in k for k in listed)  # never shown again
    assert all(k["enabled"] for k in listed)

    assert f"revoked key {created['id']}" in ok(
        "keys", "revoke", created["id"], "--usage-plan", usage_plan
    )
    remaining = list_keys(boto3.client("apigateway"), usage_plan)
    assert [k.name for k in remaining] == ["analyst-2"]
    # The key itself is gone, not only detached from the plan.
    with pytest.raises(boto3.client("apigateway").exceptions.NotFoundException):
        boto3.client("apigateway").get_api_key(apiKey=created["id"])


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
def test_the_usage_plan_is_found_in_the_stack_outputs(usage_plan: str) -> None:
    stack = f"stack-{uuid.uuid4().hex[:8]}"
    template = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"UsagePlanId": {"Value": usage_plan}},
    }
    boto3.client("cloudformation").create_stack(StackName=stack, TemplateBody=json.dumps(template))

    ok("keys", "create", "via-stack", "--stack", stack)

    assert [k.name for k in list_keys(boto3.client("apigateway"), usage_plan)] == ["via-stack"]


def test_mistakes_are_one_line_errors(usage_plan: str) -> None:
    assert_clean_error(run("keys", "list", "--stack", "no-such-stack"), 1, "no-such-stack")
    assert_clean_error(
        run("keys", "revoke", "nokey", "--usage-plan", usage_plan), 1, "no key 'nokey'"
    )
    assert_clean_error(run("keys", "create", "x", "--usage-plan", "nope"), 1, "usage plan nope")


def test_a_stack_without_the_output_says_what_to_do() -> None:
    stack = f"bare-{uuid.uuid4().hex[:8]}"
    template = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}}
    boto3.client("cloudformation").create_stack(StackName=stack, TemplateBody=json.dumps(template))
    result = run("keys", "list", "--stack", stack)
    assert_clean_error(result, 1, "no UsagePlanId output; pass --usage-plan")
