"""The functions' own S3 client: signatures equal botocore's, endpoints, retries, errors.

Its registry behaviour is the shared contract (test_registry_contract.py, backend
``s3-http``); this file covers what is particular to speaking HTTP directly.
"""

from __future__ import annotations

import calendar
import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from model_store.exceptions import RegistryError
from model_store.registry.s3_http import Credentials, S3HttpStore, available, sign
from model_store.registry.stores import KeyNotFound

CREDENTIALS = Credentials(
    "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session/token+="
)
ENVIRON = {
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "AWS_REGION": "eu-west-1",
}


def _botocore_headers(
    method: str, url: str, body: bytes, headers: dict[str, str], token: str | None
) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    credentials = BotoCredentials(CREDENTIALS.access_key, CREDENTIALS.secret_key, token)
    S3SigV4Auth(credentials, "s3", "eu-west-1").add_auth(request)
    return {k.lower(): v for k, v in request.headers.items()}


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "headers"),
    [
        pytest.param("GET", "/bucket/models/iris/1/manifest.json", {}, b"", {}, id="get"),
        pytest.param(
            "GET",
            "/bucket/",
            {"list-type": "2", "prefix": "team/models/iris/", "continuation-token": "a/b+c=="},
            b"",
            {},
            id="list",
        ),
        pytest.param(
            "PUT",
            "/bucket/models/iris/1/model.onnx",
            {},
            b"\x00\x01 bytes",
            {"if-none-match": "*"},
            id="exclusive-put",
        ),
        pytest.param(
            "GET",
            "/bucket/caf%C3%A9%20menu%2Bplus/a~b_c-d.e",
            {},
            b"",
            {},
            id="encoded-key",
        ),
    ],
)
@pytest.mark.parametrize("token", [None, CREDENTIALS.token], ids=["keys", "session"])
def test_signatures_equal_botocores(
    method: str,
    path: str,
    query: dict[str, str],
    body: bytes,
    headers: dict[str, str],
    token: str | None,
) -> None:
    import hashlib
    from urllib.parse import urlencode

    host = "127.0.0.1:4566"
    url = f"http://{host}{path}" + (f"?{urlencode(query)}" if query else "")
    extra = {**headers, **({"content-length": str(len(body))} if body else {})}
    expected = _botocore_headers(method, url, body, dict(extra), token)
    # botocore stamps the time itself: sign at the same second.
    now = time.gmtime(calendar.timegm(time.strptime(expected["x-amz-date"], "%Y%m%dT%H%M%SZ")))

    ours = sign(
        method=method,
        host=host,
        path=path,
        query=query,
        headers=extra,
        payload_sha256=hashlib.sha256(body).hexdigest(),
        credentials=Credentials(CREDENTIALS.access_key, CREDENTIALS.secret_key, token),
        region="eu-west-1",
        now=now,
    )

    assert ours["authorization"] == expected["authorization"]
    assert ours["x-amz-content-sha256"] == expected["x-amz-content-sha256"]
    assert ours.get("x-amz-security-token") == expected.get("x-amz-security-token")


# -- endpoints and availability ------------------------------------------------------------


def test_endpoints_follow_the_region_and_the_bucket_name() -> None:
    virtual = S3HttpStore("models-1", "team", environ=ENVIRON)
    assert virtual.base_url == "https://models-1.s3.eu-west-1.amazonaws.com"
    dotted = S3HttpStore("models.example.com", environ=ENVIRON)
    assert dotted.base_url == "https://s3.eu-west-1.amazonaws.com"
    china = S3HttpStore("models-1", environ={**ENVIRON, "AWS_REGION": "cn-north-1"})
    assert china.base_url == "https://models-1.s3.cn-north-1.amazonaws.com.cn"
    local = S3HttpStore("models-1", environ={**ENVIRON, "AWS_ENDPOINT_URL_S3": "http://h:1/"})
    assert local.base_url == "http://h:1"
    assert virtual.describe("models/x") == "s3://models-1/team/models/x"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (ENVIRON, True),
        ({**ENVIRON, "AWS_SECRET_ACCESS_KEY": ""}, False),
        ({k: v for k, v in ENVIRON.items() if k != "AWS_ACCESS_KEY_ID"}, False),
        ({k: v for k, v in ENVIRON.items() if k != "AWS_REGION"}, False),
        ({**ENVIRON, "AWS_USE_FIPS_ENDPOINT": "true"}, False),
        ({**ENVIRON, "AWS_USE_DUALSTACK_ENDPOINT": "true"}, False),
    ],
)
def test_it_stands_in_for_botocore_only_where_it_can(
    environ: dict[str, str], expected: bool
) -> None:
    assert available(environ) is expected


# -- over HTTP: retries, errors, kept-alive connections --------------------------------------


class _Scripted(http.server.BaseHTTPRequestHandler):
    """Answers each request with the next (status, body) of the server's script."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.requests.append((self.command, self.path, headers))
        status, body = self.server.script.pop(0) if self.server.script else (200, b"ok")
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Scripted)
        self.script: list[tuple[int, bytes]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.connections = 0

    def get_request(self) -> Any:
        self.connections += 1
        return super().get_request()


@pytest.fixture
def server() -> Iterator[_Server]:
    instance = _Server()
    thread = threading.Thread(target=instance.serve_forever, daemon=True)
    thread.start()
    try:
        yield instance
    finally:
        instance.shutdown()
        instance.server_close()


@pytest.fixture
def store(server: _Server) -> Iterator[S3HttpStore]:
    host, port = server.server_address[:2]
    environ = {**ENVIRON, "AWS_ENDPOINT_URL_S3": f"http://{host!s}:{port}"}
    instance = S3HttpStore("bucket", "team", environ=environ)
    yield instance
    instance.close()


def _error(code: str, message: str) -> bytes:
    return f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()


def test_reads_reuse_one_connection_and_are_signed(server: _Server, store: S3HttpStore) -> None:
    server.script = [(200, b"first"), (200, b"second")]

    assert store.read("models/a.json") == b"first"
    assert store.read("models/b.json") == b"second"

    assert server.connections == 1
    assert [path for _, path, _ in server.requests] == [
        "/bucket/team/models/a.json",
        "/bucket/team/models/b.json",
    ]
    headers = server.requests[0][2]
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/s3/aws4_request" in headers["authorization"]


def test_throttling_and_server_errors_are_retried(
    server: _Server, store: S3HttpStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "sleep", lambda _seconds: None)
    server.script = [(503, _error("SlowDown", "Reduce your request rate")), (500, b""), (200, b"x")]

    assert store.read("k") == b"x"
    assert len(server.requests) == 3


def test_after_three_attempts_the_error_names_the_object_and_the_code(
    server: _Server, store: S3HttpStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "sleep", lambda _seconds: None)
    server.script = [(503, _error("SlowDown", "Reduce your request rate"))] * 3

    with pytest.raises(RegistryError) as info:
        store.read("models/iris/1/model.onnx")

    assert str(info.value) == (
        "S3 GetObject s3://bucket/team/models/iris/1/model.onnx failed: "
        "SlowDown: Reduce your request rate"
    )
    assert len(server.requests) == 3


@pytest.mark.slow  # over a second and a half (the quick lane skips it)
@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (403, _error("AccessDenied", "Access Denied"), "AccessDenied: Access Denied"),
        (404, _error("NoSuchBucket", "The bucket does not exist"), "NoSuchBucket"),
        (400, b"", "400: Bad Request"),
    ],
)
def test_other_errors_are_not_retried(
    server: _Server, store: S3HttpStore, status: int, body: bytes, expected: str
) -> None:
    server.script = [(status, body)]

    with pytest.raises(RegistryError, match=expected):
        store.read("k")

    assert len(server.requests) == 1


def test_a_missing_key_is_key_not_found(server: _Server, store: S3HttpStore) -> None:
    server.script = [(404, _error("NoSuchKey", "The specified key does not exist."))]
    with pytest.raises(KeyNotFound):
        store.read("models/nothing.json")


def test_an_unreachable_endpoint_is_a_registry_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda _seconds: None)
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environ = {**ENVIRON, "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}"}
    store = S3HttpStore("bucket", environ=environ, connect_timeout=1)

    with pytest.raises(RegistryError, match=r"GetObject s3://bucket/k failed: ConnectionRefused"):
        store.read("k")


def test_without_credentials_nothing_is_sent(server: _Server) -> None:
    host, port = server.server_address[:2]
    environ = {"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_S3": f"http://{host!s}:{port}"}
    store = S3HttpStore("bucket", environ=environ)
    with pytest.raises(RegistryError, match="no credentials"):
        store.read("k")
    assert server.requests == []
