"""The local API Gateway over real HTTP: routing, keys, limits and the proxy integration.

The gateway's job is HTTP <-> proxy event, so the function is a Python invoker returning
Invocation objects (the RIE has its own tests), and keys come from a fake KeyChecker
(usage plans have their own tests against API Gateway).
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from devstack.gateway import LocalGateway
from devstack.rie import Invocation
from devstack.template import ApiSpec, MockAnswer, Route
from devstack.usage import Decision, Verdict

STAGE = "v1"
API_ID = "localapi01"
MAX_BODY = 1024
TIMEOUT = 0.5
API = ApiSpec(
    logical_id="Api",
    name="test-api",
    stage=STAGE,
    routes=(
        Route("POST", "/items/{id}", "Items", api_key_required=True),
        Route("GET", "/health", "Health", api_key_required=False),
        Route("ANY", "/files/{proxy+}", "Files", api_key_required=False),
        Route("GET", "/status", None, api_key_required=False, mock=MockAnswer(200, '{"up":1}')),
        Route(
            "GET", "/keyed", None, api_key_required=True, mock=MockAnswer(202, "x", "text/plain")
        ),
    ),
    usage_plan=None,
    binary_media_types=("image/png",),
)
KEYS = {
    "good-key": Decision(Verdict.ALLOWED, "key-id-good"),
    "throttled-key": Decision(Verdict.THROTTLED, "key-id-throttled"),
    "quota-key": Decision(Verdict.QUOTA_EXCEEDED, "key-id-quota"),
}
Answer = Callable[[dict[str, Any]], Any]


def ok_answer(event: dict[str, Any]) -> Any:
    return {"statusCode": 200, "headers": {"Content-Type": "text/plain"}, "body": "ok"}


@dataclass
class FakeKeys:
    calls: list[tuple[str, str, str | None]] = field(default_factory=list)

    def check(self, api_id: str, stage: str, key_value: str | None) -> Decision:
        self.calls.append((api_id, stage, key_value))
        return KEYS.get(key_value or "", Decision(Verdict.FORBIDDEN))


@dataclass
class Function:
    """What the gateway invokes: records each event, answers with `answer`."""

    answer: Answer = ok_answer
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def __call__(self, function: str, event: dict[str, Any]) -> Invocation:
        self.events.append((function, event))
        return Invocation(self.answer(event), None, [], 0.0)


@dataclass
class Setup:
    gateway: LocalGateway
    function: Function
    keys: FakeKeys
    access: list[str]


@pytest.fixture(scope="module")
def started() -> Iterator[Setup]:
    function, keys = Function(), FakeKeys()
    access: list[str] = []
    gateway = LocalGateway(
        API,
        api_id=API_ID,
        account_id="123456789012",
        keys=keys,
        invoke=function,
        port=0,
        max_body_bytes=MAX_BODY,
        integration_timeout=TIMEOUT,
        on_access=access.append,
    )
    gateway.start()
    try:
        yield Setup(gateway, function, keys, access)
    finally:
        function.release.set()
        gateway.stop()


@pytest.fixture
def setup(started: Setup) -> Iterator[Setup]:
    started.function.answer = ok_answer
    started.function.events.clear()
    started.function.release.clear()
    started.keys.calls.clear()
    started.access.clear()
    yield started
    started.function.release.set()  # a slow answer must not outlive its test


@dataclass(frozen=True)
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body)


def send(
    gateway: LocalGateway,
    method: str,
    target: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    connection: http.client.HTTPConnection | None = None,
) -> Response:
    own = connection is None
    conn = connection or http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        answer = conn.getresponse()
        return Response(answer.status, answer.getheaders(), answer.read())
    finally:
        if own:
            conn.close()


def access_line(setup: Setup, prefix: str) -> str:
    """The access log line of a request (written just after its response is sent)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [line for line in list(setup.access) if line.startswith(prefix)]
        if lines:
            (line,) = lines
            return line
        time.sleep(0.01)
    raise AssertionError(f"no access log line for {prefix!r} in {setup.access}")


def assert_error(response: Response, status: int, error_type: str, message: str) -> None:
    assert response.status == status, response
    assert response.header("x-amzn-ErrorType") == error_type
    assert response.header("Content-Type") == "application/json"
    assert response.header("x-amzn-RequestId")
    assert response.json() == {"message": message}


# -- answered by the gateway itself -----------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", "/v1/nope"),  # unknown path
        ("DELETE", "/v1/items/42"),  # wrong method
        ("GET", "/v1/health/extra"),  # no route for the longer path
        ("POST", "/items/42"),  # no stage prefix
        ("GET", "/v2/health"),  # another stage
        ("GET", "/"),
    ],
)
def test_undeclared_path_method_or_stage_is_missing_authentication_token(
    setup: Setup, method: str, target: str
) -> None:
    response = send(setup.gateway, method, target, headers={"x-api-key": "good-key"})
    assert_error(
        response, 403, "MissingAuthenticationTokenException", "Missing Authentication Token"
    )
    assert setup.function.events == []
    assert setup.keys.calls == []


@pytest.mark.parametrize("key", [None, "unknown-key"])
def test_missing_or_unknown_key_is_forbidden_and_the_function_is_not_invoked(
    setup: Setup, key: str | None
) -> None:
    headers = {} if key is None else {"x-api-key": key}
    response = send(setup.gateway, "POST", "/v1/items/42", body=b"{}", headers=headers)
    assert_error(response, 403, "ForbiddenException", "Forbidden")
    assert setup.function.events == []
    assert setup.keys.calls == [(API_ID, STAGE, key)]


@pytest.mark.parametrize(
    ("key", "error_type", "message"),
    [
        ("throttled-key", "TooManyRequestsException", "Too Many Requests"),
        ("quota-key", "LimitExceededException", "Limit Exceeded"),
    ],
)
def test_throttle_and_quota_are_429(setup: Setup, key: str, error_type: str, message: str) -> None:
    response = send(setup.gateway, "POST", "/v1/items/1", body=b"{}", headers={"X-API-Key": key})
    assert_error(response, 429, error_type, message)
    assert setup.function.events == []


def test_a_route_without_key_works_without_one(setup: Setup) -> None:
    response = send(setup.gateway, "GET", "/v1/health")
    assert response.status == 200
    assert response.body == b"ok"
    assert setup.keys.calls == []
    ((function, event),) = setup.function.events
    assert function == "Health"
    assert event["requestContext"]["identity"]["apiKey"] is None
    assert event["requestContext"]["identity"]["apiKeyId"] is None
    assert event["body"] is None


# -- the proxy integration --------------------------------------------------------------------
def test_the_function_receives_the_proxy_event_of_the_request(setup: Setup) -> None:
    payload = json.dumps({"features": [1, 2]}).encode()
    response = send(
        setup.gateway,
        "POST",
        "/v1/items/42?a=1&a=2&b=x%20y",
        body=payload,
        headers={"x-api-key": "good-key", "X-Custom": "c1", "Content-Type": "application/json"},
    )
    assert response.status == 200
    ((function, event),) = setup.function.events
    assert function == "Items"
    assert event["httpMethod"] == "POST"
    assert event["path"] == "/items/42"
    assert event["resource"] == "/items/{id}"
    assert event["pathParameters"] == {"id": "42"}
    assert event["requestContext"]["stage"] == STAGE
    assert event["requestContext"]["path"] == "/v1/items/42"
    assert event["requestContext"]["apiId"] == API_ID
    assert event["queryStringParameters"] == {"a": "2", "b": "x y"}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["x y"]}
    assert event["headers"]["X-Custom"] == "c1"
    assert event["body"] == payload.decode()
    assert event["isBase64Encoded"] is False
    identity = event["requestContext"]["identity"]
    assert identity["apiKey"] == "good-key"
    assert identity["apiKeyId"] == KEYS["good-key"].key_id
    assert identity["sourceIp"] == "127.0.0.1"
    assert response.header("x-amzn-RequestId") == event["requestContext"]["requestId"]
    line = access_line(setup, "POST /v1/items/42?a=1&a=2&b=x%20y ")
    assert line.startswith("POST /v1/items/42?a=1&a=2&b=x%20y 200 ")
    assert f"key={KEYS['good-key'].key_id}" in line


def test_a_binary_request_body_reaches_the_function_as_base64(setup: Setup) -> None:
    payload = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
    response = send(
        setup.gateway,
        "PUT",
        "/v1/files/a/b.png",
        body=payload,
        headers={"Content-Type": "image/png"},
    )
    assert response.status == 200
    ((function, event),) = setup.function.events
    assert function == "Files"
    assert event["pathParameters"] == {"proxy": "a/b.png"}
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload


def test_the_functions_response_passes_through(setup: Setup) -> None:
    image = bytes(range(256))
    setup.function.answer = lambda event: {
        "statusCode": 201,
        "headers": {"Content-Type": "image/png", "X-Single": "s"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": base64.b64encode(image).decode(),
        "isBase64Encoded": True,
    }
    response = send(setup.gateway, "GET", "/v1/health")
    assert response.status == 201
    assert response.body == image
    assert response.header("Content-Type") == "image/png"
    assert response.header("X-Single") == "s"
    assert [v for n, v in response.headers if n == "Set-Cookie"] == ["a=1", "b=2"]
    assert response.header("Content-Length") == str(len(image))


def test_a_body_over_the_limit_is_413_without_invoking(setup: Setup) -> None:
    response = send(
        setup.gateway,
        "POST",
        "/v1/items/1",
        body=b"x" * (MAX_BODY + 1),
        headers={"x-api-key": "good-key"},
    )
    assert_error(response, 413, "RequestEntityTooLargeException", "Request Too Long")
    assert setup.function.events == []
    at_limit = send(
        setup.gateway,
        "POST",
        "/v1/items/1",
        body=b"x" * MAX_BODY,
        headers={"x-api-key": "good-key"},
    )
    assert at_limit.status == 200


def chunks(parts: list[bytes]) -> Iterator[bytes]:
    yield from parts


def test_a_chunked_request_body_is_read(setup: Setup) -> None:
    parts = [b'{"a": ', b"1, ", b'"b": 2}']
    conn = http.client.HTTPConnection("127.0.0.1", setup.gateway.port, timeout=10)
    try:
        conn.request(
            "POST",
            "/v1/items/7",
            body=chunks(parts),
            headers={"x-api-key": "good-key", "Content-Type": "application/json"},
            encode_chunked=True,
        )
        answer = conn.getresponse()
        answer.read()
    finally:
        conn.close()
    assert answer.status == 200
    ((_, event),) = setup.function.events
    assert event["body"] == b"".join(parts).decode()


def test_a_chunked_body_over_the_limit_is_413_without_invoking(setup: Setup) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", setup.gateway.port, timeout=10)
    try:
        conn.request(
            "POST",
            "/v1/items/7",
            body=chunks([b"x" * 600, b"y" * 600]),
            headers={"x-api-key": "good-key"},
            encode_chunked=True,
        )
        answer = conn.getresponse()
        body = answer.read()
    finally:
        conn.close()
    assert answer.status == 413
    assert json.loads(body) == {"message": "Request Too Long"}
    assert setup.function.events == []


def test_an_integration_slower_than_the_timeout_is_504(setup: Setup) -> None:
    def slow(event: dict[str, Any]) -> Any:
        setup.function.release.wait(10)
        return ok_answer(event)

    setup.function.answer = slow
    started = time.monotonic()
    response = send(setup.gateway, "GET", "/v1/health")
    elapsed = time.monotonic() - started
    assert_error(response, 504, "IntegrationTimeout", "Endpoint request timed out")
    assert TIMEOUT <= elapsed < TIMEOUT + 3
    assert len(setup.function.events) == 1  # it was invoked, and outlived the timeout


def raising(event: dict[str, Any]) -> Any:
    raise ConnectionError("the environment could not start")


@pytest.mark.parametrize(
    "answer",
    [
        lambda event: {"errorType": "ValueError", "errorMessage": "boom", "stackTrace": []},
        lambda event: {"errorType": "Runtime.ExitError", "errorMessage": "exit status 3"},
        raising,
        lambda event: {"body": "no statusCode"},
        lambda event: "not a dict",
        lambda event: None,
        lambda event: {"statusCode": 200, "body": {"not": "a string"}},
    ],
    ids=["error", "crash", "raises", "no-status", "string", "none", "body-object"],
)
def test_a_function_error_or_malformed_answer_is_502(setup: Setup, answer: Answer) -> None:
    setup.function.answer = answer
    response = send(setup.gateway, "GET", "/v1/health")
    assert_error(response, 502, "InternalServerErrorException", "Internal server error")
    assert len(setup.function.events) == 1


def test_two_requests_on_one_keep_alive_connection_are_both_answered(setup: Setup) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", setup.gateway.port, timeout=10)
    try:
        first = send(setup.gateway, "GET", "/v1/health", connection=conn)
        sock = conn.sock
        assert sock is not None  # the server kept the connection open
        second = send(
            setup.gateway,
            "POST",
            "/v1/items/2",
            body=b"{}",
            headers={"x-api-key": "good-key"},
            connection=conn,
        )
        assert conn.sock is sock  # the same connection, not a new one
        third = send(setup.gateway, "GET", "/v1/nope", connection=conn)
        assert conn.sock is sock
    finally:
        conn.close()
    assert (first.status, second.status, third.status) == (200, 200, 403)
    assert [function for function, _ in setup.function.events] == ["Health", "Items"]


def test_a_literal_route_wins_over_a_greedy_proxy_route() -> None:
    api = ApiSpec(
        logical_id="Api",
        name="proxy-api",
        stage=STAGE,
        routes=(
            Route("ANY", "/{proxy+}", "Proxy", api_key_required=False),
            Route("GET", "/health", "Health", api_key_required=False),
        ),
        usage_plan=None,
    )
    gateway = LocalGateway(
        api, api_id=API_ID, account_id="123456789012", keys=FakeKeys(), invoke=Function()
    )
    try:
        matched = gateway.match("GET", "/health")
        fallback = gateway.match("GET", "/other/path")
    finally:
        gateway.stop()
    assert fallback is not None
    assert fallback[0].function == "Proxy"
    assert matched is not None
    assert matched[0].function == "Health"


def raw_exchange(gateway: LocalGateway, head: bytes) -> bytes:
    """Send raw request bytes and read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(head)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


@pytest.mark.parametrize(
    "framing",
    [b"Content-Length: abc\r\n", b"Content-Length: -5\r\n", b"Transfer-Encoding: chunked\r\n"],
    ids=["not-a-number", "negative", "broken-chunk-size"],
)
def test_a_request_with_broken_framing_is_400_and_the_connection_closes(
    setup: Setup, framing: bytes
) -> None:
    body = b"zz\r\nnot hex\r\n0\r\n\r\n" if b"chunked" in framing else b""
    answer = raw_exchange(
        setup.gateway,
        b"POST /v1/items/42 HTTP/1.1\r\nHost: x\r\nx-api-key: good\r\n" + framing + b"\r\n" + body,
    )
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 400"), answer
    assert rest.endswith(b'{"message": "Bad Request"}')
    assert setup.function.events == []


# -- every method answered as API Gateway answers it ------------------------------------------
NOT_GET = ("TRACE", "CONNECT", "PATCH", "PUT", "DELETE", "OPTIONS", "PROPFIND", "BREW", "get")
NOT_ANY = ("TRACE", "CONNECT", "PROPFIND", "BREW", "get")  # ANY is API Gateway's seven
UNROUTED = [
    *((method, "/v1/health") for method in NOT_GET),  # a GET-only route
    *((method, "/v1/nope") for method in NOT_GET),  # no route at all
    *((method, "/v1/files/a.txt") for method in NOT_ANY),  # an ANY route
]


@pytest.mark.parametrize(("method", "target"), UNROUTED)
def test_a_method_without_a_route_is_missing_authentication_token(
    setup: Setup, method: str, target: str
) -> None:
    response = send(setup.gateway, method, target, headers={"x-api-key": "good-key"})
    assert_error(
        response, 403, "MissingAuthenticationTokenException", "Missing Authentication Token"
    )
    assert setup.function.events == []
    assert access_line(setup, f"{method} {target} 403")


def test_head_without_a_route_is_403_with_no_body(setup: Setup) -> None:
    response = send(setup.gateway, "HEAD", "/v1/health")
    assert response.status == 403
    assert response.header("x-amzn-ErrorType") == "MissingAuthenticationTokenException"
    assert response.body == b""
    assert setup.function.events == []


@pytest.mark.parametrize(
    "request_line", [b"TRACE /v1/health HTTP/1.1", b"CONNECT example.com:443 HTTP/1.1"]
)
def test_trace_and_connect_are_json_not_the_servers_501_page(
    setup: Setup, request_line: bytes
) -> None:
    answer = raw_exchange(
        setup.gateway,
        request_line + b"\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 403 Forbidden", answer
    assert b"Content-Type: application/json" in rest
    assert rest.endswith(b'{"message": "Missing Authentication Token"}')
    assert setup.function.events == []


def test_the_connection_stays_usable_after_an_unrouted_method(setup: Setup) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", setup.gateway.port, timeout=10)
    try:
        first = send(setup.gateway, "TRACE", "/v1/health", connection=conn)
        second = send(setup.gateway, "GET", "/v1/health", connection=conn)
    finally:
        conn.close()
    assert (first.status, second.status) == (403, 200)
    assert [function for function, _ in setup.function.events] == ["Health"]


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
def test_any_stands_for_api_gateways_seven_methods(setup: Setup, method: str) -> None:
    response = send(setup.gateway, method, "/v1/files/a.txt")
    assert response.status == 200
    assert [function for function, _ in setup.function.events] == ["Files"]


def test_a_mock_route_is_answered_by_the_gateway_without_invoking(setup: Setup) -> None:
    response = send(setup.gateway, "GET", f"/{STAGE}/status")
    assert (response.status, response.body) == (200, b'{"up":1}')
    assert response.header("content-type") == "application/json"
    assert setup.function.events == []


def test_a_keyed_mock_route_still_checks_the_key(setup: Setup) -> None:
    assert send(setup.gateway, "GET", f"/{STAGE}/keyed").status == 403
    answered = send(setup.gateway, "GET", f"/{STAGE}/keyed", headers={"x-api-key": "good-key"})
    assert (answered.status, answered.body) == (202, b"x")
    assert setup.function.events == []
