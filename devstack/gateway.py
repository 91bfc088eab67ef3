"""A local API Gateway (REST API, Lambda proxy integration) for the routes of a template.

It answers where API Gateway answers without calling the function, with the same status
and message: an undeclared path or method is 403 "Missing Authentication Token"; a
missing, unknown or revoked key on a key-required route is 403 "Forbidden"; the usage
plan's throttle and quota are 429; a body over 10 MB is 413; an integration over 29 s is
504; a function error or a malformed answer is 502 "Internal server error".
"""

from __future__ import annotations

import concurrent.futures
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol
from urllib.parse import urlsplit

from devstack.http_server import BackgroundServer
from devstack.proxy import (
    HttpRequest,
    HttpResponse,
    MalformedResponseError,
    proxy_event,
    proxy_response,
)
from devstack.rie import Invocation
from devstack.template import ApiSpec, Route
from devstack.usage import Decision, Verdict

# What a route's ANY method stands for; any other method (TRACE, CONNECT, ...) has no route.
ANY_METHODS = frozenset({"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"})
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
INTEGRATION_TIMEOUT = 29.0  # API Gateway's default integration timeout
_DISCARD_LIMIT = 64 * 1024 * 1024


class KeyChecker(Protocol):
    def check(self, api_id: str, stage: str, key_value: str | None) -> Decision: ...


Invoker = Callable[[str, dict[str, Any]], Invocation]


@dataclass(frozen=True)
class GatewayError:
    status: int
    error_type: str
    message: str


MISSING_TOKEN = GatewayError(
    403, "MissingAuthenticationTokenException", "Missing Authentication Token"
)
FORBIDDEN = GatewayError(403, "ForbiddenException", "Forbidden")
THROTTLED = GatewayError(429, "TooManyRequestsException", "Too Many Requests")
QUOTA_EXCEEDED = GatewayError(429, "LimitExceededException", "Limit Exceeded")
TOO_LARGE = GatewayError(413, "RequestEntityTooLargeException", "Request Too Long")
TIMED_OUT = GatewayError(504, "IntegrationTimeout", "Endpoint request timed out")
INTERNAL = GatewayError(502, "InternalServerErrorException", "Internal server error")
BAD_REQUEST = GatewayError(400, "BadRequestException", "Bad Request")
GATEWAY_FAILURE = GatewayError(500, "InternalServerErrorException", "Internal server error")
_BY_VERDICT = {
    Verdict.FORBIDDEN: FORBIDDEN,
    Verdict.THROTTLED: THROTTLED,
    Verdict.QUOTA_EXCEEDED: QUOTA_EXCEEDED,
}


def _specificity(route: Route) -> tuple[int, int, int]:
    segments = route.path.strip("/").split("/")
    greedy = sum(segment.endswith("+}") for segment in segments)
    parameters = sum(segment.startswith("{") for segment in segments)
    return greedy, parameters, -len(segments)


def error_response(error: GatewayError, request_id: str) -> HttpResponse:
    return HttpResponse(
        error.status,
        [
            ("Content-Type", "application/json"),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", error.error_type),
        ],
        json.dumps({"message": error.message}).encode(),
    )


@dataclass(frozen=True)
class Outcome:
    """One request's answer, and what the terminal's access log says about it."""

    response: HttpResponse
    function: str | None
    key_id: str | None
    note: str = ""


class LocalGateway:
    def __init__(
        self,
        api: ApiSpec,
        *,
        api_id: str,
        account_id: str,
        keys: KeyChecker,
        invoke: Invoker,
        host: str = "127.0.0.1",
        port: int = 3000,
        max_body_bytes: int = MAX_BODY_BYTES,
        integration_timeout: float = INTEGRATION_TIMEOUT,
        on_access: Callable[[str], None] | None = None,
    ) -> None:
        self.api = api
        self.api_id = api_id
        self.account_id = account_id
        self.keys = keys
        self.invoke = invoke
        self.host = host
        self.port = port
        self.max_body_bytes = max_body_bytes
        self.integration_timeout = integration_timeout
        self.on_access = on_access
        # API Gateway picks the most specific resource: literal segments before {param},
        # {param} before a greedy {proxy+}, whatever the declaration order.
        self._routes = [(route, route.pattern()) for route in sorted(api.routes, key=_specificity)]
        # Integrations that outlive the gateway's timeout keep running, as in Lambda.
        self._integrations = concurrent.futures.ThreadPoolExecutor(
            max_workers=64, thread_name_prefix="integration"
        )
        self._http: BackgroundServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/{self.api.stage}"

    # -- request handling, independent of the HTTP server ------------------------------
    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route, pattern in self._routes:
            found = pattern.match(path)
            if found is not None and (
                route.method == method or (route.method == "ANY" and method in ANY_METHODS)
            ):
                return route, found.groupdict()
        return None

    def handle(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
    ) -> Outcome:
        request_id = str(uuid.uuid4())
        split = urlsplit(target)
        stage, _, rest = split.path.lstrip("/").partition("/")
        path = "/" + rest
        matched = self.match(method, path) if stage == self.api.stage else None
        if matched is None:
            return Outcome(error_response(MISSING_TOKEN, request_id), None, None)
        route, path_parameters = matched
        key = next((v for n, v in headers if n.lower() == "x-api-key"), None)
        key_id = None
        if route.api_key_required:
            decision = self.keys.check(self.api_id, stage, key)
            if decision.verdict is not Verdict.ALLOWED:
                error = _BY_VERDICT[decision.verdict]
                return Outcome(error_response(error, request_id), route.function, decision.key_id)
            key_id = decision.key_id
        if route.mock is not None:  # API Gateway answers itself; no function runs
            mock = route.mock
            headers_out = [("content-type", mock.content_type), ("x-amzn-RequestId", request_id)]
            return Outcome(HttpResponse(mock.status, headers_out, mock.body.encode()), None, key_id)
        function = route.function
        assert function is not None  # a route is a function's or a MOCK
        event = proxy_event(
            HttpRequest(method, path, stage, split.query, headers, body, source_ip),
            route,
            path_parameters,
            api_id=self.api_id,
            account_id=self.account_id,
            api_key=key if route.api_key_required else None,
            api_key_id=key_id,
            binary_media_types=self.api.binary_media_types,
            request_id=request_id,
        )
        future = self._integrations.submit(self.invoke, function, event)
        try:
            invocation = future.result(timeout=self.integration_timeout)
        except concurrent.futures.TimeoutError:
            return Outcome(error_response(TIMED_OUT, request_id), route.function, key_id, "timeout")
        except Exception as exc:  # the environment could not run at all
            note = f"{type(exc).__name__}: {exc}"
            return Outcome(error_response(INTERNAL, request_id), route.function, key_id, note)
        if invocation.failed:
            note = (
                f"{invocation.payload.get('errorType')}: {invocation.payload.get('errorMessage')}"
            )
            return Outcome(error_response(INTERNAL, request_id), route.function, key_id, note)
        try:
            response = proxy_response(invocation.payload)
        except MalformedResponseError as exc:
            return Outcome(error_response(INTERNAL, request_id), route.function, key_id, str(exc))
        response.headers.append(("x-amzn-RequestId", request_id))
        return Outcome(response, route.function, key_id)

    # -- the HTTP server -------------------------------------------------------------------
    def start(self) -> None:
        gateway = self

        class Handler(_RequestHandler):
            pass

        Handler.gateway = gateway
        self._http = BackgroundServer(self.host, self.port, Handler, name="gateway")
        self.port = self._http.port

    def stop(self) -> None:
        if self._http is not None:
            self._http.stop()
            self._http = None
        self._integrations.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> LocalGateway:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _RequestHandler(BaseHTTPRequestHandler):
    gateway: LocalGateway
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; with Nagle on, a keep-alive client's delayed
    # ACK holds the body back ~40 ms.
    disable_nagle_algorithm = True
    server_version = "local-apigateway"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the gateway's own access log says more

    def _serve(self) -> None:
        started = time.perf_counter()
        gateway = self.gateway
        headers = list(self.headers.items())
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            outcome = Outcome(error_response(BAD_REQUEST, str(uuid.uuid4())), None, None)
            self.close_connection = True  # the body's end is unknown
        elif length > gateway.max_body_bytes:
            outcome = Outcome(error_response(TOO_LARGE, str(uuid.uuid4())), None, None)
            self._discard(length)
        else:
            body: bytes | None
            try:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = self._read_chunked(gateway.max_body_bytes)
                else:
                    body = self.rfile.read(length) if length else b""
            except ValueError:  # a broken chunk size
                body, length = b"", -1
            if length < 0:
                outcome = Outcome(error_response(BAD_REQUEST, str(uuid.uuid4())), None, None)
                self.close_connection = True
            elif body is None:
                outcome = Outcome(error_response(TOO_LARGE, str(uuid.uuid4())), None, None)
                self.close_connection = True
            else:
                outcome = self._handle(headers, body)
        self._write(outcome.response)
        if gateway.on_access is not None:
            elapsed_ms = (time.perf_counter() - started) * 1000
            key = f" key={outcome.key_id}" if outcome.key_id else ""
            note = f" ({outcome.note})" if outcome.note else ""
            status = outcome.response.status
            gateway.on_access(f"{self.command} {self.path} {status} {elapsed_ms:.0f} ms{key}{note}")

    def _handle(self, headers: list[tuple[str, str]], body: bytes) -> Outcome:
        try:
            return self.gateway.handle(
                self.command, self.path, headers, body, self.client_address[0]
            )
        except Exception as exc:  # e.g. the key store (moto) went away: answer, don't hang up
            error = error_response(GATEWAY_FAILURE, str(uuid.uuid4()))
            return Outcome(error, None, None, f"{type(exc).__name__}: {exc}")

    def _discard(self, length: int) -> None:
        # Read what the client sends so it sees the 413 rather than a broken pipe; a body
        # far over the limit is cut off instead.
        if length > _DISCARD_LIMIT:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)

    def _read_chunked(self, limit: int) -> bytes | None:
        body = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return bytes(body)
            body += self.rfile.read(size)
            self.rfile.readline()
            if len(body) > limit:
                return None

    def _write(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() not in {"content-length", "connection", "transfer-encoding"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    # http.server dispatches on do_<METHOD>, and answers a method without one with its own
    # 501 page. API Gateway answers every method: one it has no route for is a 403.
    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)
