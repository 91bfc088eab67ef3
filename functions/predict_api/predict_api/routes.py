"""The endpoints. They adapt HTTP to model_store and back; the model logic is not here."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json

from model_store import LoadedModel, Predictions, UnscorableError, batch_records, records_matrix
from model_store.scoring import Matrix
from model_store.tracing import subsegment
from predict_api.errors import ApiError, request_id_of
from predict_api.models import (
    BatchResponse,
    ErrorResponse,
    GatewayError,
    HealthResponse,
    ModelInfo,
    PredictResponse,
)
from predict_api.observability import record_prediction
from predict_api.service import ModelService

router = APIRouter()
T = TypeVar("T", bound=BaseModel)
_HEALTHY = b'{"status":"ok"}'
# A Lambda response carries 6 MB with its headers and JSON escaping: answers stay well under.
RESPONSE_LIMIT = 5 * 1024 * 1024

# What each route answers, for the OpenAPI document (docs.py). Routes return Responses
# they serialise themselves, so FastAPI has no response model to build at import: the
# schemas are made when a client first asks for the document.
RESPONSE_MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("/health", "get"): HealthResponse,
    ("/model", "get"): ModelInfo,
    ("/predict", "post"): PredictResponse,
    ("/batch_predict", "post"): BatchResponse,
}

# The errors each route answers, for the same document: the API's envelope, or API Gateway's
# own {"message"} where the gateway answers before the function runs. These refer to the
# schemas of ERROR_MODELS and to the API_KEY scheme, which docs.py adds.
ERROR_MODELS: tuple[type[BaseModel], ...] = (ErrorResponse, GatewayError)
API_KEY = "ApiKey"
SECURITY_SCHEMES = {API_KEY: {"type": "apiKey", "in": "header", "name": "x-api-key"}}
_KEYED: dict[str, Any] = {"security": [{API_KEY: []}]}


def _error(description: str, *models: type[BaseModel], **extra: Any) -> dict[str, Any]:
    refs = [{"$ref": f"#/components/schemas/{model.__name__}"} for model in models]
    schema = refs[0] if len(refs) == 1 else {"anyOf": refs}
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
        **extra,
    }


_FORBIDDEN = _error("API Gateway: no API key, or one unknown, disabled or revoked", GatewayError)
_TOO_LARGE = _error(
    "Body over the limit for the model's features, or an answer over a Lambda response "
    "(the envelope); body over 10 MB (API Gateway)",
    ErrorResponse,
    GatewayError,
)
_INVALID = _error(
    "Not JSON, not the model's features, or values it cannot score (NaN and infinity "
    "included); details name each field",
    ErrorResponse,
)
_THROTTLED = _error("API Gateway: the key's usage plan throttle or quota", GatewayError)
_UNAVAILABLE = _error(
    "The model cannot be loaded (or has no form this runtime serves) right now",
    ErrorResponse,
    headers={
        "Retry-After": {
            "description": "Seconds to wait before retrying",
            "required": True,
            "schema": {"type": "integer"},
        }
    },
)
_MODEL_ERRORS: dict[int | str, dict[str, Any]] = {
    403: _FORBIDDEN,
    429: _THROTTLED,
    503: _UNAVAILABLE,
}
_SCORING_ERRORS: dict[int | str, dict[str, Any]] = {
    403: _FORBIDDEN,
    413: _TOO_LARGE,
    422: _INVALID,
    429: _THROTTLED,
    503: _UNAVAILABLE,
}


def _service(request: Request) -> ModelService:
    service: ModelService = request.app.state.service
    return service


def _json(data: dict[str, Any], version: str) -> Response:
    return Response(
        to_json(data), media_type="application/json", headers={"X-Model-Version": version}
    )


async def _body(request: Request, service: ModelService) -> bytes:
    body = await request.body()
    _check_size(body, service.body_limit(None, batch=True))
    if not body.strip():
        raise ApiError(
            422,
            "invalid_input",
            "request body is empty; send a JSON object",
            [{"loc": ["body"], "msg": "empty body", "type": "missing"}],
        )
    return body


def _check_size(body: bytes, limit: int) -> None:
    if len(body) > limit:
        raise ApiError(
            413, "payload_too_large", f"request body is {len(body)} bytes; the limit is {limit}"
        )


def _scored(loaded: LoadedModel, matrix: Matrix, *, batch: bool) -> Predictions:
    """The model's predictions, or a 422 naming what it could not score (never a 500)."""
    try:
        with subsegment("score", model=loaded.name, version=loaded.version, rows=len(matrix)):
            return loaded.predict(matrix)
    except UnscorableError as exc:
        details = [
            {"loc": ["body", "records", i] if batch else ["body"], "msg": why, "type": "unscorable"}
            for i, why in sorted(exc.rows.items())
        ]
        message = f"the model cannot score {len(exc.rows)} of the records" if batch else exc.rows[0]
        raise ApiError(422, "invalid_input", message, details) from None


def _answer(data: dict[str, Any], version: str, count: int) -> Response:
    body = to_json(data)
    if len(body) > RESPONSE_LIMIT:
        per_record = len(to_json(data.get("predictions", []))) / count
        fixed = len(body) - per_record * count
        fits = max(1, int((RESPONSE_LIMIT - fixed) // per_record))
        raise ApiError(
            413,
            "payload_too_large",
            f"the answer would be {len(body)} bytes, more than a Lambda response carries; "
            f"send at most {fits} records at a time",
        )
    return Response(body, media_type="application/json", headers={"X-Model-Version": version})


def _validate(schema: type[T], body: bytes) -> T:
    """Parse and validate in one pass (pydantic-core); NaN and Infinity fail as non-finite."""
    try:
        return schema.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
    details = [
        {"loc": ["body", *error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in errors
    ]
    if any(e["type"] == "too_long" and tuple(e["loc"]) == ("records",) for e in errors):
        raise ApiError(413, "payload_too_large", "too many records in one call", details)
    if any(e["type"] == "json_invalid" for e in errors):
        raise ApiError(422, "invalid_input", "request body is not valid JSON", details)
    raise ApiError(
        422, "invalid_input", "request body does not match the model's features", details
    )


@router.get("/health", response_model=None, tags=["service"])
async def health() -> Response:
    """Liveness: loads nothing, needs no key."""
    return Response(_HEALTHY, media_type="application/json")


@router.get(
    "/model", response_model=None, tags=["model"], responses=_MODEL_ERRORS, openapi_extra=_KEYED
)
async def model_info(request: Request) -> Response:
    """The served model's metadata; ``loaded`` says whether this instance holds it yet."""
    service = _service(request)
    manifest = service.manifest()
    current = service.loader.current
    info = ModelInfo.from_manifest(
        manifest,
        loaded=current is not None and current.manifest.sha256 == manifest.sha256,
        alias=service.settings.model_alias if not service.settings.model_version else None,
    )
    return _json(info.model_dump(mode="json"), manifest.version or "")


@router.post(
    "/predict",
    response_model=None,
    tags=["model"],
    responses=_SCORING_ERRORS,
    openapi_extra=_KEYED,
)
async def predict_one(request: Request) -> Response:
    """Score one record whose fields are the model's features."""
    service = _service(request)
    body = await _body(request, service)
    loaded = service.model()
    _check_size(body, service.body_limit(loaded.manifest, batch=False))
    record = _validate(service.schemas(loaded.manifest).record, body)
    result = _scored(loaded, records_matrix([record]), batch=False)
    record_prediction(loaded.version, 1, batch=False)
    probabilities = result.probability_dicts()
    return _answer(
        {
            "prediction": result.labels[0],
            "probabilities": probabilities[0] if probabilities else None,
            "model": {"name": loaded.name, "version": loaded.version},
            "request_id": request_id_of(request),
        },
        loaded.version,
        1,
    )


@router.post(
    "/batch_predict",
    response_model=None,
    tags=["model"],
    responses=_SCORING_ERRORS,
    openapi_extra=_KEYED,
)
async def batch_predict(request: Request) -> Response:
    """Score many records in one vectorised call; predictions keep the input order."""
    service = _service(request)
    body = await _body(request, service)
    loaded = service.model()
    _check_size(body, service.body_limit(loaded.manifest, batch=True))
    batch = _validate(service.schemas(loaded.manifest).batch, body)
    records = batch_records(batch)
    result = _scored(loaded, records_matrix(records), batch=True)
    record_prediction(loaded.version, len(records), batch=True)
    classes = result.classes
    rows = result.probabilities.tolist() if result.probabilities is not None else None
    return _answer(
        {
            "predictions": [{"prediction": label, "probabilities": None} for label in result.labels]
            if rows is None
            else [
                {"prediction": label, "probabilities": dict(zip(classes, row, strict=True))}
                for label, row in zip(result.labels, rows, strict=True)
            ],
            "count": len(records),
            "model": {"name": loaded.name, "version": loaded.version},
            "request_id": request_id_of(request),
        },
        loaded.version,
        len(records),
    )
