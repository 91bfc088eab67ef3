"""Every error leaves the API in one envelope, and each error type maps to one status here.

``{"error": {"code", "message", "details"}, "request_id"}``. model_store knows nothing
of HTTP; this module is where its typed errors become statuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from model_store import InputError, MissingFormError, ModelUnavailableError
from predict_api.observability import logger

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    503: "model_unavailable",
}


class ApiError(Exception):
    """An error the API raises on purpose, with its status and machine-readable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}


def request_id_of(request: Request) -> str:
    return str(request.scope.get("request_id", ""))


MAX_DETAILS = 20


def envelope(
    status: int,
    code: str,
    message: str,
    request_id: str,
    details: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The one error shape. At most MAX_DETAILS details travel, with a count of the rest:
    an error body stays small whatever the request was."""
    details = details or []
    error: dict[str, Any] = {"code": code, "message": message, "details": details[:MAX_DETAILS]}
    if len(details) > MAX_DETAILS:
        error["details_omitted"] = len(details) - MAX_DETAILS
    return JSONResponse(
        {"error": error, "request_id": request_id}, status_code=status, headers=headers
    )


def install(app: FastAPI, *, retry_after_seconds: int) -> None:
    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return envelope(
            exc.status, exc.code, exc.message, request_id_of(request), exc.details, exc.headers
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = {404: "no such route", 405: "method not allowed on this route"}.get(
            exc.status_code, str(exc.detail)
        )
        return envelope(exc.status_code, code, message, request_id_of(request), headers=exc.headers)

    async def model_unavailable(request: Request, exc: Exception) -> JSONResponse:
        logger.warning("model unavailable", extra={"reason": str(exc)})
        message = "the model cannot be loaded right now; retry later"
        if isinstance(exc.__cause__, MissingFormError):
            # Not a fault of the moment: the served version has no form this runtime runs.
            # Say so (names and versions only), so the caller can tell whoever publishes.
            message = f"the model cannot be served: {exc.__cause__}"
        return envelope(
            503,
            "model_unavailable",
            message,
            request_id_of(request),
            headers={"Retry-After": str(retry_after_seconds)},
        )

    async def input_error(request: Request, exc: Exception) -> JSONResponse:
        return envelope(422, "invalid_input", str(exc), request_id_of(request))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(ModelUnavailableError, model_unavailable)
    app.add_exception_handler(InputError, input_error)
