"""Per-request context as pure ASGI (cheap on the warm path).

- request id: API Gateway's ``requestContext.requestId`` (else Lambda's, else a new one),
  in every response header, error body and log line;
- the stage prefix: API Gateway strips ``/Prod`` from ``path`` but the browser still sees
  it, so it becomes the ASGI ``root_path`` and /docs fetches ``/Prod/openapi.json``;
- a last-resort 500 in the error envelope, never a stack trace;
- a log line for each request that went wrong (every request at DEBUG).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from predict_api.observability import logger


def stage_prefix(event: dict[str, Any]) -> str:
    """``/Prod`` for ``requestContext.path`` ``/Prod/docs`` and ``path`` ``/docs``.

    Derived rather than taken from ``stage``: a custom domain's base path mapping shows up
    the same way, and a custom domain without one adds no prefix at all.
    """
    full = str((event.get("requestContext") or {}).get("path") or "")
    path = str(event.get("path") or "")
    if path and full != path and full.endswith(path):
        return full[: -len(path)].rstrip("/")
    return ""


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        event: dict[str, Any] = scope.get("aws.event") or {}
        request_id = (
            (event.get("requestContext") or {}).get("requestId")
            or getattr(scope.get("aws.context"), "aws_request_id", None)
            or uuid.uuid4().hex
        )
        scope["request_id"] = request_id
        prefix = stage_prefix(event)
        if prefix:
            scope["root_path"] = prefix
            scope["path"] = prefix + scope["path"]
        logger.append_keys(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("unhandled error")
            await _internal_error(send_with_id, request_id)
        finally:
            # One line per request that went wrong; a line per success costs about a fifth
            # of the warm path (JSON formatting and a write), and API Gateway's access logs
            # and the metrics already count them. DEBUG (LogLevel, or a sample of
            # invocations with POWERTOOLS_LOGGER_SAMPLE_RATE) shows every request.
            log = logger.debug if status < 400 else logger.info
            log(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1e3, 3),
                },
            )


async def _internal_error(send: Send, request_id: str) -> None:
    body = json.dumps(
        {
            "error": {"code": "internal_error", "message": "internal server error", "details": []},
            "request_id": request_id,
        }
    ).encode()
    try:
        await send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})
    except Exception:  # noqa: S110 - the response had already started; nothing more to send
        pass
