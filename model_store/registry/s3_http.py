"""An S3 prefix over plain HTTPS with SigV4 signing: the functions' registry store.

A Lambda function reads a handful of small objects from the registry (an alias, a
manifest, one model file). Through botocore that costs a cold start about a third of a
second before the first byte moves: importing botocore, then loading the S3 service model
to build a client (measured in bench/cold_start.py). This store speaks the four S3 calls
the registry needs (GetObject, PutObject, conditional PutObject, ListObjectsV2) with the
standard library: SigV4 signing (hashlib, hmac), one kept-alive connection per endpoint,
botocore's standard retry policy (three attempts, exponential backoff with jitter, on
throttling, 5xx and connection errors), and S3's XML error codes mapped the way
``S3Store`` maps botocore's. It takes credentials and region from the environment, as
Lambda provides them; where they are not there (profiles, SSO, instance roles), or a FIPS
or dual-stack endpoint is asked for, ``available()`` says no and botocore is used instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import os
import random
import re
import ssl
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from model_store.exceptions import RegistryError
from model_store.registry.stores import KeyExists, KeyNotFound
from model_store.tracing import subsegment

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
ATTEMPTS = 3
_RETRYABLE = {500, 502, 503, 504, 429}
_RETRYABLE_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout"}
_DNS_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_XML_FIELD = "<{0}>(.*?)</{0}>"


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Credentials | None:
        access, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
        if not access or not secret:
            return None
        return cls(access, secret, environ.get("AWS_SESSION_TOKEN") or None)


def _endpoint_override(environ: Mapping[str, str]) -> str | None:
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        value = environ.get(name, "").strip()
        if value:
            return value.rstrip("/")
    return None


def available(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this store can stand in for botocore here (see the module's docstring)."""
    if Credentials.from_environment(environ) is None:
        return False
    if not (environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")):
        return False
    special = ("AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT", "AWS_S3_USE_ARN_REGION")
    return not any(environ.get(name, "").lower() == "true" for name in special)


def sign(
    *,
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    payload_sha256: str,
    credentials: Credentials,
    region: str,
    now: time.struct_time,
    service: str = "s3",
) -> dict[str, str]:
    """The headers of a SigV4-signed request (PATH already URI-encoded, as S3 wants it)."""
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", now)
    day = amz_date[:8]
    signed_headers = {
        **{k.lower(): " ".join(str(v).split()) for k, v in headers.items()},
        "host": host,
        "x-amz-date": amz_date,
        "x-amz-content-sha256": payload_sha256,
    }
    if credentials.token:
        signed_headers["x-amz-security-token"] = credentials.token
    names = sorted(signed_headers)
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())
    )
    canonical = "\n".join(
        [
            method,
            path,
            canonical_query,
            "".join(f"{name}:{signed_headers[name]}\n" for name in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{credentials.secret_key}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return {**signed_headers, "authorization": authorization}


@dataclass(frozen=True)
class _Budget:
    """What requests made under a deadline may still spend."""

    ends: float  # time.monotonic()
    attempts: int

    def remaining(self) -> float:
        return self.ends - time.monotonic()


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes

    def error(self) -> tuple[str, str]:
        """S3's (Code, Message) from an XML error body, or the status when it has none."""
        text = self.body.decode("utf-8", "replace")
        found = [re.search(_XML_FIELD.format(tag), text, re.S) for tag in ("Code", "Message")]
        code = found[0].group(1) if found[0] else str(self.status)
        message = found[1].group(1) if found[1] else http.client.responses.get(self.status, "")
        return code, message


class _Connections:
    """One kept-alive connection per endpoint, for one thread at a time each."""

    def __init__(self, connect_timeout: float, read_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
        self._tls: ssl.SSLContext | None = None
        # Idle sockets close with their pool, not whenever the collector gets to them.
        weakref.finalize(self, _close_all, self._idle)

    def take(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        with self._lock:
            idle = self._idle.get((scheme, netloc))
            if idle:
                return idle.pop()
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            return http.client.HTTPSConnection(
                netloc, timeout=self.connect_timeout, context=self._tls
            )
        return http.client.HTTPConnection(netloc, timeout=self.connect_timeout)

    def give_back(self, scheme: str, netloc: str, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.setdefault((scheme, netloc), []).append(connection)

    def close(self) -> None:
        with self._lock:
            _close_all(self._idle)


def _close_all(idle: dict[tuple[str, str], list[http.client.HTTPConnection]]) -> None:
    for connections in idle.values():
        for connection in connections:
            connection.close()
    idle.clear()


class S3HttpStore:
    """An S3 bucket and prefix, spoken to directly (see the module's docstring)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        environ: Mapping[str, str] | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        env = os.environ if environ is None else environ
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        self._environ = env
        override = _endpoint_override(env)
        if override is not None:
            # Custom endpoints (moto, MinIO, LocalStack) take path-style requests.
            self.base_url, self._bucket_path = override, f"/{bucket}"
        else:
            suffix = "amazonaws.com.cn" if self.region.startswith("cn-") else "amazonaws.com"
            if _DNS_NAME.fullmatch(bucket):
                self.base_url, self._bucket_path = f"https://{bucket}.s3.{self.region}.{suffix}", ""
            else:  # a name with dots breaks the TLS certificate of a virtual host
                self.base_url = f"https://s3.{self.region}.{suffix}"
                self._bucket_path = f"/{bucket}"
        parts = urlsplit(self.base_url)
        self._scheme, self._netloc = parts.scheme, parts.netloc
        self._base_path = parts.path.rstrip("/")
        self._connections = _Connections(connect_timeout, read_timeout)
        self._budget = threading.local()

    def describe(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def close(self) -> None:
        """Close the kept-alive connections (they also close when the store is collected)."""
        self._connections.close()

    @contextlib.contextmanager
    def deadline(self, seconds: float, *, attempts: int = ATTEMPTS) -> Iterator[None]:
        """Requests made in this block (this thread's), retries and all, end within SECONDS
        of its start and make at most ATTEMPTS tries each; a request out of time fails
        with a RegistryError. Nested blocks keep the tighter of both."""
        outer: _Budget | None = getattr(self._budget, "value", None)
        budget = _Budget(time.monotonic() + seconds, attempts)
        if outer is not None:
            budget = _Budget(min(budget.ends, outer.ends), min(attempts, outer.attempts))
        self._budget.value = budget
        try:
            yield
        finally:
            self._budget.value = outer

    # -- the ObjectStore protocol ------------------------------------------------------------
    def read(self, key: str) -> bytes:
        response = self._request("GET", "GetObject", key)
        if response.status == 200:
            return response.body
        code, message = response.error()
        if code in {"NoSuchKey", "404"}:
            raise KeyNotFound(key)
        raise self._fail("GetObject", key, code, message)

    def write(self, key: str, data: bytes, *, exclusive: bool = False) -> None:
        headers = {"if-none-match": "*"} if exclusive else {}
        response = self._request("PUT", "PutObject", key, body=data, headers=headers)
        if response.status == 200:
            return
        code, message = response.error()
        if exclusive and code in {"PreconditionFailed", "412"}:
            raise KeyExists(key)
        raise self._fail("PutObject", key, code, message)

    def list_keys(self, prefix: str) -> Iterator[str]:
        token: str | None = None
        while True:
            query = {"list-type": "2", "prefix": self.prefix + prefix}
            if token:
                query["continuation-token"] = token
            response = self._request("GET", "ListObjectsV2", "", query=query, bucket_level=True)
            if response.status != 200:
                raise self._fail("ListObjectsV2", prefix, *response.error())
            keys, token = _parse_listing(response.body)
            for key in keys:
                yield key[len(self.prefix) :]
            if not token:
                return

    # -- HTTP ------------------------------------------------------------------------------
    def _fail(self, op: str, key: str, code: str, message: str) -> RegistryError:
        return RegistryError(f"S3 {op} {self.describe(key)} failed: {code}: {message}")

    def _request(
        self,
        method: str,
        op: str,
        key: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        bucket_level: bool = False,
    ) -> _Response:
        with subsegment("S3", namespace="aws") as trace:
            trace.describe("operation", op)
            trace.describe("bucket_name", self.bucket)
            trace.describe("key", self.prefix + key)
            response = self._attempts(method, op, key, body, headers, query, bucket_level)
            trace.answered(response.status)
            return response

    def _attempts(
        self,
        method: str,
        op: str,
        key: str,
        body: bytes,
        headers: Mapping[str, str] | None,
        query: Mapping[str, str] | None,
        bucket_level: bool,
    ) -> _Response:
        credentials = Credentials.from_environment(self._environ)
        if credentials is None:
            raise RegistryError(f"S3 {op} {self.describe(key)} failed: no credentials")
        path = self._base_path + self._bucket_path
        path += "/" if bucket_level else "/" + quote(self.prefix + key, safe="/~")
        payload = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        query = dict(query or {})
        target = path + (
            "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query.items())
            if query
            else ""
        )
        budget: _Budget | None = getattr(self._budget, "value", None)
        last: Exception | None = None
        for attempt in range(budget.attempts if budget else ATTEMPTS):
            if attempt:
                # botocore's standard mode: full jitter on an exponential base, capped at 20 s.
                pause = random.uniform(0, min(20.0, 0.1 * 2**attempt))  # noqa: S311
                time.sleep(max(0.0, min(pause, budget.remaining())) if budget else pause)
            if budget is not None and budget.remaining() <= 0:
                last = TimeoutError("out of time")
                break
            signed = sign(
                method=method,
                host=self._netloc,
                path=path,
                query=query,
                headers={**(headers or {}), **({"content-length": str(len(body))} if body else {})},
                payload_sha256=payload,
                credentials=credentials,
                region=self.region,
                now=time.gmtime(),
            )
            try:
                response = self._send(method, target, body, signed, budget)
            except (OSError, http.client.HTTPException) as exc:
                last = exc
                continue
            if response.status in _RETRYABLE or (
                response.status >= 400 and response.error()[0] in _RETRYABLE_CODES
            ):
                last = RegistryError(
                    f"S3 {op} {self.describe(key)} failed: {': '.join(response.error())}"
                )
                continue
            return response
        if isinstance(last, RegistryError):
            raise last
        if isinstance(last, TimeoutError) and budget is not None:
            raise RegistryError(
                f"S3 {op} {self.describe(key)} failed: no answer within its deadline"
            ) from None
        raise RegistryError(
            f"S3 {op} {self.describe(key)} failed: {type(last).__name__}: {last}"
        ) from last

    def _send(
        self,
        method: str,
        target: str,
        body: bytes,
        headers: Mapping[str, str],
        budget: _Budget | None,
    ) -> _Response:
        timeouts = self._connections
        connection = timeouts.take(self._scheme, self._netloc)
        try:
            if budget is not None:  # connecting counts against the deadline too
                connection.timeout = max(0.001, min(timeouts.connect_timeout, budget.remaining()))
            connection.request(method, target, body=body or None, headers=dict(headers))
            self._time_left(connection, budget)
            raw = connection.getresponse()
            response = _Response(raw.status, self._body(connection, raw, budget))
        except BaseException:
            with contextlib.suppress(Exception):
                connection.close()
            raise
        if raw.will_close:
            connection.close()
        else:
            self._connections.give_back(self._scheme, self._netloc, connection)
        return response

    def _time_left(self, connection: http.client.HTTPConnection, budget: _Budget | None) -> None:
        """Give the socket's next wait what is left of the deadline (or the read timeout)."""
        if connection.sock is None:
            return
        wait = self._connections.read_timeout
        if budget is not None:
            left = budget.remaining()
            if left <= 0:
                raise TimeoutError("out of time")
            wait = min(wait, left)
        connection.sock.settimeout(wait)

    def _body(
        self,
        connection: http.client.HTTPConnection,
        raw: http.client.HTTPResponse,
        budget: _Budget | None,
    ) -> bytes:
        """The whole body, a deadline checked between reads (a slow drip cannot outlast it)."""
        if budget is None:
            return raw.read()
        chunks: list[bytes] = []
        while True:
            self._time_left(connection, budget)
            chunk = raw.read(1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def _parse_listing(body: bytes) -> tuple[list[str], str | None]:
    """Keys and the continuation token of a ListObjectsV2 page."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(body)  # noqa: S314 - S3's own response, over TLS
    namespace = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    keys = [element.text or "" for element in root.iterfind(f"{namespace}Contents/{namespace}Key")]
    truncated = (root.findtext(f"{namespace}IsTruncated") or "").lower() == "true"
    token = root.findtext(f"{namespace}NextContinuationToken") if truncated else None
    return keys, token
