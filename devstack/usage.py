"""API keys and usage plans, enforced as API Gateway enforces them.

Keys and plans live in the API Gateway service (moto locally), so keys made with
`model-store keys create` work here as they do on AWS. A key is accepted on a stage when
it is enabled and belongs to a usage plan attached to that stage; the plan's throttle is
a token bucket per key, its quota a counter per key and period.

The look-ups go to moto, which can hang (stopped, swapping) rather than refuse: they have
short timeouts and one attempt (LOOKUP_CONFIG). When a look-up fails, the key's last
answer holds for up to `max_stale_seconds` after it was last confirmed; then, and for a
key never confirmed, the answer is 403, as for an unknown key (fail closed).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_apigateway import APIGatewayClient


# A look-up is two small calls to a local server: one attempt, seconds at most.
LOOKUP_CONFIG = Config(
    connect_timeout=1.0, read_timeout=2.0, retries={"total_max_attempts": 1, "mode": "standard"}
)
MAX_STALE_SECONDS = 60.0


class Verdict(Enum):
    ALLOWED = "allowed"
    FORBIDDEN = "forbidden"  # missing, unknown, disabled or not in a plan of this stage
    THROTTLED = "throttled"
    QUOTA_EXCEEDED = "quota exceeded"


@dataclass(frozen=True)
class Plan:
    id: str
    rate_limit: float | None
    burst_limit: int | None
    quota_limit: int | None
    quota_period: str | None


@dataclass(frozen=True)
class KeyGrant:
    key_id: str
    plan: Plan


@dataclass(frozen=True)
class _Known:
    """What a look-up said about a key, when it last said so, and when it was last tried."""

    grant: KeyGrant | None
    confirmed: float  # -inf: never answered
    tried: float


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    key_id: str | None = None


class TokenBucket:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.capacity = float(max(burst, 1))
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def quota_window(period: str, now: datetime) -> str:
    """The quota period a moment falls in (UTC days, Monday weeks, calendar months)."""
    if period == "DAY":
        return now.strftime("%Y-%m-%d")
    if period == "WEEK":
        start = now - timedelta(days=now.weekday())
        return start.strftime("%Y-%m-%d")
    if period == "MONTH":
        return now.strftime("%Y-%m")
    raise ValueError(f"unknown quota period {period!r}")


class UsagePlans:
    """Decides, per request, whether a key may call a stage of an API."""

    def __init__(
        self,
        apigateway: APIGatewayClient,
        *,
        cache_seconds: float = 1.0,
        max_stale_seconds: float = MAX_STALE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_log: Callable[[str], None] | None = None,
    ) -> None:
        self._client = apigateway
        self._cache_seconds = cache_seconds
        self._max_stale = max_stale_seconds
        self._clock = clock
        self._now = now
        self._on_log = on_log or (lambda line: None)
        self._lock = threading.Lock()
        self._grants: dict[tuple[str, str, str], _Known] = {}
        self._failing = False
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._used: dict[tuple[str, str, str], int] = {}

    def check(self, api_id: str, stage: str, key_value: str | None) -> Decision:
        if not key_value:
            return Decision(Verdict.FORBIDDEN)
        grant = self._grant(api_id, stage, key_value)
        if grant is None:
            return Decision(Verdict.FORBIDDEN)
        plan = grant.plan
        with self._lock:
            if plan.rate_limit is not None:
                bucket_key = (plan.id, grant.key_id)
                bucket = self._buckets.get(bucket_key)
                if bucket is None or (bucket.rate, bucket.capacity) != (
                    plan.rate_limit,
                    float(max(plan.burst_limit or 1, 1)),
                ):
                    bucket = TokenBucket(plan.rate_limit, plan.burst_limit or 1, self._clock)
                    self._buckets[bucket_key] = bucket
                if not bucket.take():
                    return Decision(Verdict.THROTTLED, grant.key_id)
            if plan.quota_limit is not None and plan.quota_period is not None:
                window = quota_window(plan.quota_period, self._now())
                counter = (plan.id, grant.key_id, window)
                if self._used.get(counter, 0) >= plan.quota_limit:
                    return Decision(Verdict.QUOTA_EXCEEDED, grant.key_id)
                self._used[counter] = self._used.get(counter, 0) + 1
        return Decision(Verdict.ALLOWED, grant.key_id)

    def _grant(self, api_id: str, stage: str, key_value: str) -> KeyGrant | None:
        cache_key = (api_id, stage, key_value)
        with self._lock:
            known = self._grants.get(cache_key)
        now = self._clock()
        # Within cache_seconds of the last try, whatever it gave: a failing look-up is not
        # retried by every request (each would wait out the timeouts).
        if known is not None and now - known.tried < self._cache_seconds:
            return self._held(known, now)
        try:
            grant = self._lookup(api_id, stage, key_value)
        except (BotoCoreError, ClientError) as exc:
            now = self._clock()
            held = _Known(
                known.grant if known else None, known.confirmed if known else -math.inf, now
            )
            with self._lock:
                self._grants[cache_key] = held
                first = not self._failing
                self._failing = True
            if first:
                self._on_log(
                    f"key look-up failed ({type(exc).__name__}: {exc}); known keys keep their "
                    f"last answer for up to {self._max_stale:.0f} s, others are refused"
                )
            return self._held(held, now)
        now = self._clock()
        with self._lock:
            self._grants[cache_key] = _Known(grant, now, now)
            recovered = self._failing
            self._failing = False
        if recovered:
            self._on_log("key look-ups answer again")
        return grant

    def _held(self, known: _Known, now: float) -> KeyGrant | None:
        """The last answer while it is at most max_stale_seconds old; then none (403)."""
        if now - known.confirmed <= self._max_stale:
            return known.grant
        return None

    def _lookup(self, api_id: str, stage: str, key_value: str) -> KeyGrant | None:
        pages = self._client.get_paginator("get_api_keys").paginate(includeValues=True)
        key = next(
            (
                item
                for page in pages
                for item in page.get("items", [])
                if item.get("value") == key_value
            ),
            None,
        )
        if key is None or not key.get("enabled", False):
            return None
        plans = self._client.get_usage_plans(keyId=key["id"]).get("items", [])
        for plan in plans:
            stages = plan.get("apiStages", [])
            if any(s.get("apiId") == api_id and s.get("stage") == stage for s in stages):
                throttle = plan.get("throttle") or {}
                quota = plan.get("quota") or {}
                return KeyGrant(
                    key_id=key["id"],
                    plan=Plan(
                        id=plan["id"],
                        rate_limit=throttle.get("rateLimit"),
                        burst_limit=throttle.get("burstLimit"),
                        quota_limit=quota.get("limit"),
                        quota_period=quota.get("period"),
                    ),
                )
        return None
