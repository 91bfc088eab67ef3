"""The REST API proxy event built from an HTTP request, and the response built from the answer."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from devstack.proxy import HttpRequest, MalformedResponseError, proxy_event, proxy_response
from devstack.template import Route

ROUTE = Route("POST", "/items/{id}", "Fn", api_key_required=True)


def request(
    *,
    method: str = "POST",
    path: str = "/items/42",
    stage: str = "v1",
    query: str = "",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    source_ip: str = "10.1.2.3",
) -> HttpRequest:
    return HttpRequest(method, path, stage, query, headers or [], body, source_ip)


def event(
    http: HttpRequest,
    *,
    route: Route = ROUTE,
    path_parameters: dict[str, str] | None = None,
    api_key: str | None = "the-key",
    api_key_id: str | None = "key-id-1",
    binary_media_types: tuple[str, ...] = (),
    request_id: str | None = "req-1",
) -> dict[str, Any]:
    return proxy_event(
        http,
        route,
        {"id": "42"} if path_parameters is None else path_parameters,
        api_id="abc123",
        account_id="123456789012",
        api_key=api_key,
        api_key_id=api_key_id,
        binary_media_types=binary_media_types,
        request_id=request_id,
    )


# -- proxy_event ------------------------------------------------------------------------------
def test_event_resource_paths_stage_and_request_context() -> None:
    built = event(request(path="/items/42", stage="v1"))
    assert built["resource"] == "/items/{id}"
    assert built["path"] == "/items/42"  # without the stage
    assert built["httpMethod"] == "POST"
    assert built["pathParameters"] == {"id": "42"}
    context = built["requestContext"]
    assert context["path"] == "/v1/items/42"  # with the stage
    assert context["stage"] == "v1"
    assert context["resourcePath"] == "/items/{id}"
    assert context["httpMethod"] == "POST"
    assert context["requestId"] == "req-1"
    assert context["apiId"] == "abc123"
    assert context["accountId"] == "123456789012"


def test_event_request_id_is_generated_when_not_given() -> None:
    first = event(request(), request_id=None)["requestContext"]["requestId"]
    second = event(request(), request_id=None)["requestContext"]["requestId"]
    assert first
    assert first != second


def test_event_identity_carries_the_key_and_the_source_ip() -> None:
    built = event(
        request(source_ip="192.0.2.7", headers=[("User-Agent", "probe/1")]),
        api_key="k-value",
        api_key_id="k-id",
    )
    identity = built["requestContext"]["identity"]
    assert identity["apiKey"] == "k-value"
    assert identity["apiKeyId"] == "k-id"
    assert identity["sourceIp"] == "192.0.2.7"
    assert identity["userAgent"] == "probe/1"
    without = event(request(), api_key=None, api_key_id=None)["requestContext"]["identity"]
    assert without["apiKey"] is None
    assert without["apiKeyId"] is None


def test_event_headers_repeated_headers_are_multi_valued_and_last_value_wins() -> None:
    headers = [("Host", "localhost:3000"), ("X-Tag", "a"), ("Accept", "*/*"), ("X-Tag", "b")]
    built = event(request(headers=headers, source_ip="10.9.8.7"))
    assert built["multiValueHeaders"]["X-Tag"] == ["a", "b"]
    assert built["headers"]["X-Tag"] == "b"
    assert built["headers"]["Accept"] == "*/*"
    assert built["multiValueHeaders"]["Accept"] == ["*/*"]
    # What API Gateway adds on its way to the function.
    assert built["headers"]["X-Forwarded-For"] == "10.9.8.7"
    assert built["headers"]["X-Forwarded-Port"] == "3000"
    assert built["headers"]["X-Amzn-Trace-Id"].startswith("Root=1-")
    assert built["requestContext"]["domainName"] == "localhost"


def test_event_headers_sent_by_the_client_are_not_replaced() -> None:
    built = event(request(headers=[("x-forwarded-for", "203.0.113.5")]))
    assert built["headers"]["x-forwarded-for"] == "203.0.113.5"
    assert "X-Forwarded-For" not in built["headers"]


def test_event_query_strings_single_and_multi_valued() -> None:
    built = event(request(query="a=1&b=x%20y&a=2&empty="))
    assert built["queryStringParameters"] == {"a": "2", "b": "x y", "empty": ""}
    assert built["multiValueQueryStringParameters"] == {
        "a": ["1", "2"],
        "b": ["x y"],
        "empty": [""],
    }


def test_event_without_query_path_parameters_or_body_has_nones() -> None:
    built = event(request(method="GET", query="", body=b""), path_parameters={})
    assert built["queryStringParameters"] is None
    assert built["multiValueQueryStringParameters"] is None
    assert built["pathParameters"] is None
    assert built["body"] is None
    assert built["isBase64Encoded"] is False


def test_event_text_body_is_passed_as_text() -> None:
    payload = json.dumps({"name": "Zoë"}).encode()
    built = event(request(headers=[("Content-Type", "application/json")], body=payload))
    assert built["body"] == payload.decode()
    assert built["isBase64Encoded"] is False


@pytest.mark.parametrize(
    "content_type", ["image/png", "IMAGE/PNG", "image/png; charset=binary", "application/pdf"]
)
def test_event_body_of_a_binary_media_type_is_base64(content_type: str) -> None:
    payload = b"plain ascii, binary by its media type"
    built = event(
        request(headers=[("Content-Type", content_type)], body=payload),
        binary_media_types=("image/*", "application/pdf"),
    )
    assert built["isBase64Encoded"] is True
    assert base64.b64decode(built["body"]) == payload


def test_event_body_that_is_not_utf8_is_base64_even_without_binary_types() -> None:
    payload = bytes(range(256))
    built = event(request(headers=[("Content-Type", "application/octet-stream")], body=payload))
    assert built["isBase64Encoded"] is True
    assert base64.b64decode(built["body"]) == payload


def test_event_text_media_type_not_in_binary_types_stays_text() -> None:
    built = event(
        request(headers=[("Content-Type", "text/csv")], body=b"a,b\n1,2\n"),
        binary_media_types=("image/*",),
    )
    assert built["body"] == "a,b\n1,2\n"
    assert built["isBase64Encoded"] is False


# -- proxy_response ---------------------------------------------------------------------------
def test_response_status_headers_and_body() -> None:
    response = proxy_response(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "text/plain", "X-One": "1"},
            "body": "created",
        }
    )
    assert response.status == 201
    assert ("Content-Type", "text/plain") in response.headers
    assert ("X-One", "1") in response.headers
    assert response.body == b"created"
    # The function's Content-Type is the only one.
    assert sum(1 for name, _ in response.headers if name.lower() == "content-type") == 1


def test_response_multi_value_headers_merge_with_headers() -> None:
    response = proxy_response(
        {
            "statusCode": 200,
            "headers": {"X-Single": "s", "Set-Cookie": "c=1"},
            "multiValueHeaders": {"Set-Cookie": ["c=1", "d=2"], "X-Multi": ["m1", "m2"]},
            "body": "{}",
        }
    )
    assert [v for n, v in response.headers if n == "Set-Cookie"] == ["c=1", "d=2"]
    assert [v for n, v in response.headers if n == "X-Multi"] == ["m1", "m2"]
    assert [v for n, v in response.headers if n == "X-Single"] == ["s"]


def test_response_base64_body_is_decoded() -> None:
    payload = bytes(range(256))
    response = proxy_response(
        {
            "statusCode": 200,
            "headers": {"Content-Type": "application/octet-stream"},
            "body": base64.b64encode(payload).decode(),
            "isBase64Encoded": True,
        }
    )
    assert response.body == payload


def test_response_without_content_type_defaults_to_json() -> None:
    response = proxy_response({"statusCode": 204})
    assert response.status == 204
    assert response.body == b""
    assert ("Content-Type", "application/json") in response.headers


@pytest.mark.parametrize(
    "payload",
    [
        None,
        "a string",
        ["statusCode", 200],
        {"body": "no status"},
        {"statusCode": "200", "body": ""},
        {"statusCode": 200.0, "body": ""},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "body": 123},
        {"statusCode": 200, "headers": ["X-A", "1"]},
        {"statusCode": 200, "multiValueHeaders": "X-A"},
    ],
)
def test_malformed_answers_are_rejected(payload: Any) -> None:
    with pytest.raises(MalformedResponseError):
        proxy_response(payload)
