"""The Lambda proxy integration of a REST API: the event it sends, the response it expects.

The event has the shape API Gateway (REST, v1 payload) sends to a function: the path
without the stage, the stage in requestContext.path, headers and query strings both as
last-value and as multi-value maps, the key in requestContext.identity, and a base64 body
for binary media types.
"""

from __future__ import annotations

import base64
import fnmatch
import secrets
import string
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from devstack.template import Route


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str  # without the stage, e.g. /predict
    stage: str
    query: str
    headers: Sequence[tuple[str, str]]  # in arrival order, names as sent
    body: bytes
    source_ip: str


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class MalformedResponseError(ValueError):
    """The function's answer is not a proxy response (API Gateway answers 502)."""


def _multi(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for name, value in pairs:
        result.setdefault(name, []).append(value)
    return result


def _is_binary(content_type: str | None, binary_media_types: Sequence[str]) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return any(fnmatch.fnmatch(media_type, pattern.lower()) for pattern in binary_media_types)


def _random_id(length: int) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def proxy_event(
    request: HttpRequest,
    route: Route,
    path_parameters: Mapping[str, str],
    *,
    api_id: str,
    account_id: str,
    api_key: str | None,
    api_key_id: str | None,
    binary_media_types: Sequence[str] = (),
    request_id: str | None = None,
) -> dict[str, Any]:
    """The REST API proxy event for one request, as API Gateway builds it."""
    headers = list(request.headers)
    names = {name.lower() for name, _ in headers}
    host = next((v for n, v in headers if n.lower() == "host"), "127.0.0.1")
    user_agent = next((v for n, v in headers if n.lower() == "user-agent"), None)
    content_type = next((v for n, v in headers if n.lower() == "content-type"), None)
    now = datetime.now(UTC)
    epoch_ms = int(time.time() * 1000)
    trace_id = f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"
    # Headers API Gateway adds on its way to the function.
    for name, value in (
        ("X-Forwarded-For", request.source_ip),
        ("X-Forwarded-Port", host.rsplit(":", 1)[-1] if ":" in host else "80"),
        ("X-Forwarded-Proto", "http"),
        ("X-Amzn-Trace-Id", trace_id),
    ):
        if name.lower() not in names:
            headers.append((name, value))
    query = parse_qsl(request.query, keep_blank_values=True)
    multi_query = _multi(query)
    if request.body and (
        _is_binary(content_type, binary_media_types) or not _is_utf8(request.body)
    ):
        body: str | None = base64.b64encode(request.body).decode()
        is_base64 = True
    else:
        body = request.body.decode() if request.body else None
        is_base64 = False
    return {
        "resource": route.path,
        "path": request.path,
        "httpMethod": request.method,
        "headers": {name: values[-1] for name, values in _multi(headers).items()},
        "multiValueHeaders": _multi(headers),
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(path_parameters) or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": _random_id(6),
            "resourcePath": route.path,
            "httpMethod": request.method,
            "extendedRequestId": base64.b64encode(secrets.token_bytes(12)).decode(),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{request.stage}{request.path}",
            "accountId": account_id,
            "protocol": "HTTP/1.1",
            "stage": request.stage,
            "domainPrefix": host.split(".", 1)[0].split(":", 1)[0],
            "requestTimeEpoch": epoch_ms,
            "requestId": request_id or str(uuid.uuid4()),
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "apiKey": api_key,
                "apiKeyId": api_key_id,
                "sourceIp": request.source_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": user_agent,
                "user": None,
            },
            "domainName": host.split(":", 1)[0],
            "deploymentId": _random_id(6),
            "apiId": api_id,
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def proxy_response(payload: Any) -> HttpResponse:
    """The HTTP response for a function's proxy answer; anything else is malformed."""
    if not isinstance(payload, dict) or not isinstance(payload.get("statusCode"), int):
        raise MalformedResponseError(f"not a proxy response: {str(payload)[:200]}")
    headers: list[tuple[str, str]] = []
    single = payload.get("headers") or {}
    multi = payload.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise MalformedResponseError("headers must be objects")
    for name, values in multi.items():
        headers.extend((name, str(value)) for value in values)
    multi_names = {name.lower() for name in multi}
    headers.extend(
        (name, str(value)) for name, value in single.items() if name.lower() not in multi_names
    )
    body = payload.get("body") or ""
    if not isinstance(body, str):
        raise MalformedResponseError("body must be a string")
    data = base64.b64decode(body) if payload.get("isBase64Encoded") else body.encode()
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return HttpResponse(payload["statusCode"], headers, data)
