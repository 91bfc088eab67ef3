"""API keys and usage plans, enforced from the API Gateway service (a moto server over HTTP)."""

from __future__ import annotations

import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError

from devstack.usage import LOOKUP_CONFIG, TokenBucket, UsagePlans, Verdict, quota_window

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


# -- look-ups when API Gateway (moto) fails or hangs ------------------------------------------
class Outage:
    """Makes every call of a client fail as a hung server's would, while `down` is set."""

    def __init__(self, client: APIGatewayClient) -> None:
        self.down = False
        self.attempts = 0
        client.meta.events.register("before-send.apigateway", self._before_send)

    def _before_send(self, request: Any, **_: Any) -> None:
        self.attempts += 1
        if self.down:
            raise ReadTimeoutError(endpoint_url=request.url)


def lookup_client(endpoint: str) -> APIGatewayClient:
    """A client configured as the local stack's key look-ups are."""
    client: APIGatewayClient = boto3.client(
        "apigateway", endpoint_url=endpoint, region_name="us-east-1", config=LOOKUP_CONFIG
    )
    return client


@pytest.fixture
def lookups(moto_endpoint: str) -> APIGatewayClient:
    """The client the local stack looks keys up with: short timeouts, one attempt."""
    return lookup_client(moto_endpoint)


def test_a_known_key_keeps_its_answer_for_a_minute_of_failed_lookups_then_is_forbidden(
    lookups: APIGatewayClient,
) -> None:
    api = make_api(lookups)
    _, value = make_key(api)
    outage = Outage(lookups)
    clock = FakeClock()
    logs: list[str] = []
    plans = UsagePlans(lookups, cache_seconds=1, clock=clock, on_log=logs.append)
    assert plans.check(api.api_id, STAGE, value).verdict is Verdict.ALLOWED  # confirmed now
    confirmed = clock.now
    outage.down = True
    for seconds in (2, 30, 59, 60):
        clock.now = confirmed + seconds
        attempts = outage.attempts
        assert plans.check(api.api_id, STAGE, value).verdict is Verdict.ALLOWED, seconds
        assert outage.attempts == attempts + 1  # it did look, and the look-up failed
    assert len([line for line in logs if "look-up failed" in line]) == 1  # said once
    assert "ReadTimeoutError" in logs[0]
    clock.now = confirmed + 60.5
    assert plans.check(api.api_id, STAGE, value).verdict is Verdict.FORBIDDEN
    clock.now = confirmed + 600
    assert plans.check(api.api_id, STAGE, value).verdict is Verdict.FORBIDDEN

    # moto answers again: the key is confirmed, and a new minute starts from there.
    outage.down = False
    clock.now += 1
    assert plans.check(api.api_id, STAGE, value).verdict is Verdict.ALLOWED
    assert logs[-1] == "key look-ups answer again"
    reconfirmed = clock.now
    outage.down = True
    clock.now = reconfirmed + 59
    assert plans.check(api.api_id, STAGE, value).verdict is Verdict.ALLOWED
    clock.now = reconfirmed + 61
    assert plans.check(api.api_id, STAGE, value).verdict is Verdict.FORBIDDEN


def test_a_key_never_confirmed_is_forbidden_during_an_outage(lookups: APIGatewayClient) -> None:
    api = make_api(lookups)
    _, value = make_key(api)  # valid, but the gateway has not seen it yet
    outage = Outage(lookups)
    outage.down = True
    clock = FakeClock()
    plans = UsagePlans(lookups, cache_seconds=1, clock=clock)
    assert plans.check(api.api_id, STAGE, value).verdict is Verdict.FORBIDDEN
    assert plans.check(api.api_id, STAGE, "no-such-key").verdict is Verdict.FORBIDDEN
    outage.down = False
    clock.now += 1
    assert plans.check(api.api_id, STAGE, value).verdict is Verdict.ALLOWED


def test_a_failed_lookup_is_not_repeated_by_every_request(lookups: APIGatewayClient) -> None:
    api = make_api(lookups)
    _, value = make_key(api)
    outage = Outage(lookups)
    clock = FakeClock()
    plans = UsagePlans(lookups, cache_seconds=1, clock=clock)
    assert plans.check(api.api_id, STAGE, value).verdict is Verdict.ALLOWED
    outage.down = True
    clock.now += 1
    attempts = outage.attempts
    verdicts = [plans.check(api.api_id, STAGE, value).verdict for _ in range(20)]
    assert verdicts == [Verdict.ALLOWED] * 20
    assert outage.attempts == attempts + 1  # one try per cache_seconds, not per request


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
def test_a_lookup_against_a_server_that_never_answers_returns_within_seconds() -> None:
    # A socket that accepts connections (the kernel does, from the backlog) and never
    # answers: what a stopped (SIGSTOP) moto looks like from here.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        port = hung.getsockname()[1]
        logs: list[str] = []
        plans = UsagePlans(lookup_client(f"http://127.0.0.1:{port}"), on_log=logs.append)
        started = time.monotonic()
        decision = plans.check("api", STAGE, "some-key")
        elapsed = time.monotonic() - started
    assert decision.verdict is Verdict.FORBIDDEN
    assert elapsed < 5
    assert "ReadTimeoutError" in logs[0]
