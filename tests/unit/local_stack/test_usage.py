"""API keys and usage plans, enforced from the API Gateway service (a moto server over HTTP)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from devstack.usage import TokenBucket, UsagePlans, Verdict, quota_window

if TYPE_CHECKING:
    from mypy_boto3_apigateway import APIGatewayClient

STAGE = "v1"


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class FakeNow:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


# -- TokenBucket --------------------------------------------------------------------------------
def test_token_bucket_allows_the_burst_then_refills_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.25  # half a token at 2/s
    assert not bucket.take()
    clock.now += 0.25  # one token
    assert bucket.take()
    assert not bucket.take()
    clock.now += 100  # refills to the burst, never beyond
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_token_bucket_with_a_zero_burst_still_lets_one_through() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, burst=0, clock=clock)
    assert bucket.take()
    assert not bucket.take()


# -- quota_window -------------------------------------------------------------------------------
def test_quota_window_day() -> None:
    evening = datetime(2026, 3, 10, 23, 59, tzinfo=UTC)
    assert quota_window("DAY", evening) == quota_window("DAY", evening.replace(hour=0))
    assert quota_window("DAY", evening) != quota_window("DAY", evening + timedelta(minutes=1))


def test_quota_window_week_starts_on_monday() -> None:
    monday = datetime(2026, 3, 9, 0, 0, tzinfo=UTC)
    assert monday.weekday() == 0
    sunday_night = monday + timedelta(days=6, hours=23, minutes=59)
    assert quota_window("WEEK", monday) == quota_window("WEEK", sunday_night)
    assert quota_window("WEEK", monday) != quota_window("WEEK", monday - timedelta(minutes=1))
    assert quota_window("WEEK", monday) != quota_window("WEEK", monday + timedelta(days=7))


def test_quota_window_month() -> None:
    first = datetime(2026, 2, 1, tzinfo=UTC)
    last = datetime(2026, 2, 28, 23, 59, tzinfo=UTC)
    assert quota_window("MONTH", first) == quota_window("MONTH", last)
    assert quota_window("MONTH", last) != quota_window("MONTH", last + timedelta(minutes=1))
    assert quota_window("MONTH", first) != quota_window("MONTH", first.replace(year=2025))


def test_quota_window_unknown_period() -> None:
    with pytest.raises(ValueError, match="YEAR"):
        quota_window("YEAR", datetime.now(UTC))


# -- UsagePlans against API Gateway -------------------------------------------------------------
@dataclass(frozen=True)
class Api:
    client: APIGatewayClient
    api_id: str
    plan_id: str


@pytest.fixture
def client(moto_endpoint: str) -> APIGatewayClient:
    return boto3.client("apigateway", endpoint_url=moto_endpoint, region_name="us-east-1")


def make_api(client: APIGatewayClient, **plan: Any) -> Api:
    api_id = client.create_rest_api(name=f"api-{uuid.uuid4().hex[:8]}")["id"]
    plan_id = client.create_usage_plan(
        name=f"plan-{uuid.uuid4().hex[:8]}", apiStages=[{"apiId": api_id, "stage": STAGE}], **plan
    )["id"]
    return Api(client, api_id, plan_id)


def make_key(api: Api, *, enabled: bool = True) -> tuple[str, str]:
    """A new key in the API's plan: (id, value)."""
    value = uuid.uuid4().hex
    key = api.client.create_api_key(name=f"key-{value[:8]}", enabled=enabled, value=value)
    api.client.create_usage_plan_key(usagePlanId=api.plan_id, keyId=key["id"], keyType="API_KEY")
    return key["id"], value


def test_a_key_in_a_plan_of_the_stage_is_allowed(client: APIGatewayClient) -> None:
    api = make_api(client)
    key_id, value = make_key(api)
    decision = UsagePlans(client).check(api.api_id, STAGE, value)
    assert decision.verdict is Verdict.ALLOWED
    assert decision.key_id == key_id


@pytest.mark.parametrize("value", [None, "", "no-such-key-value"])
def test_missing_or_unknown_key_is_forbidden(client: APIGatewayClient, value: str | None) -> None:
    api = make_api(client)
    make_key(api)
    assert UsagePlans(client).check(api.api_id, STAGE, value).verdict is Verdict.FORBIDDEN


def test_a_disabled_key_is_forbidden_once_the_cache_expires(client: APIGatewayClient) -> None:
    api = make_api(client)
    key_id, value = make_key(api)
    plans = UsagePlans(client, cache_seconds=0)
    assert plans.check(api.api_id, STAGE, value).verdict is Verdict.ALLOWED
    client.update_api_key(
        apiKey=key_id, patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}]
    )
    assert plans.check(api.api_id, STAGE, value).verdict is Verdict.FORBIDDEN


def test_a_key_created_disabled_is_forbidden(client: APIGatewayClient) -> None:
    api = make_api(client)
    _, value = make_key(api, enabled=False)
    assert UsagePlans(client).check(api.api_id, STAGE, value).verdict is Verdict.FORBIDDEN


def test_the_key_lookup_is_cached_for_cache_seconds(client: APIGatewayClient) -> None:
    api = make_api(client)
    key_id, value = make_key(api)
    clock = FakeClock()
    plans = UsagePlans(client, cache_seconds=60, clock=clock)
    assert plans.check(api.api_id, STAGE, value).verdict is Verdict.ALLOWED
    client.delete_api_key(apiKey=key_id)
    clock.now += 59
    assert plans.check(api.api_id, STAGE, value).verdict is Verdict.ALLOWED  # still cached
    clock.now += 2
    assert plans.check(api.api_id, STAGE, value).verdict is Verdict.FORBIDDEN


def test_a_key_in_a_plan_of_another_stage_or_api_is_forbidden(client: APIGatewayClient) -> None:
    api = make_api(client)
    _, value = make_key(api)
    other = make_api(client)
    plans = UsagePlans(client)
    assert plans.check(api.api_id, "other-stage", value).verdict is Verdict.FORBIDDEN
    assert plans.check(other.api_id, STAGE, value).verdict is Verdict.FORBIDDEN
    assert plans.check(api.api_id, STAGE, value).verdict is Verdict.ALLOWED


def test_a_key_in_no_plan_is_forbidden(client: APIGatewayClient) -> None:
    api = make_api(client)
    value = uuid.uuid4().hex
    client.create_api_key(name="planless", enabled=True, value=value)
    assert UsagePlans(client).check(api.api_id, STAGE, value).verdict is Verdict.FORBIDDEN


def test_a_deleted_key_is_forbidden(client: APIGatewayClient) -> None:
    api = make_api(client)
    key_id, value = make_key(api)
    plans = UsagePlans(client, cache_seconds=0)
    assert plans.check(api.api_id, STAGE, value).verdict is Verdict.ALLOWED
    client.delete_api_key(apiKey=key_id)
    assert plans.check(api.api_id, STAGE, value).verdict is Verdict.FORBIDDEN


def test_the_plans_throttle_is_a_token_bucket_per_key(client: APIGatewayClient) -> None:
    api = make_api(client, throttle={"rateLimit": 1.0, "burstLimit": 2})
    key_id, value = make_key(api)
    _, other_value = make_key(api)
    clock = FakeClock()
    plans = UsagePlans(client, clock=clock, cache_seconds=3600)
    verdicts = [plans.check(api.api_id, STAGE, value) for _ in range(3)]
    assert [d.verdict for d in verdicts] == [Verdict.ALLOWED, Verdict.ALLOWED, Verdict.THROTTLED]
    assert verdicts[2].key_id == key_id
    # Another key has its own bucket.
    assert plans.check(api.api_id, STAGE, other_value).verdict is Verdict.ALLOWED
    clock.now += 1.0  # one token at 1/s
    assert plans.check(api.api_id, STAGE, value).verdict is Verdict.ALLOWED
    assert plans.check(api.api_id, STAGE, value).verdict is Verdict.THROTTLED


def test_the_plans_quota_counts_per_day_and_resets_the_next_day(client: APIGatewayClient) -> None:
    api = make_api(client, quota={"limit": 3, "period": "DAY"})
    key_id, value = make_key(api)
    now = FakeNow(datetime(2026, 3, 10, 23, 0, tzinfo=UTC))
    plans = UsagePlans(client, now=now)
    verdicts = [plans.check(api.api_id, STAGE, value) for _ in range(4)]
    assert [d.verdict for d in verdicts] == [Verdict.ALLOWED] * 3 + [Verdict.QUOTA_EXCEEDED]
    assert verdicts[3].key_id == key_id
    now.now += timedelta(minutes=30)  # the same UTC day
    assert plans.check(api.api_id, STAGE, value).verdict is Verdict.QUOTA_EXCEEDED
    now.now += timedelta(hours=1)  # a new day
    assert [plans.check(api.api_id, STAGE, value).verdict for _ in range(4)] == [
        Verdict.ALLOWED
    ] * 3 + [Verdict.QUOTA_EXCEEDED]
