"""The endpoints. They adapt HTTP to model_store and back; the model logic is not here."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ValidationError

from model_store import predict
from predict_api.errors import ApiError, request_id_of
from predict_api.models import BatchResponse, HealthResponse, ModelInfo, PredictResponse
from predict_api.observability import record_prediction
from predict_api.service import ModelService

router = APIRouter()


def _service(request: Request) -> ModelService:
    service: ModelService = request.app.state.service
    return service


def _json(data: dict[str, Any], version: str) -> Response:
    return Response(
        json.dumps(data, separators=(",", ":"), allow_nan=False).encode(),
        media_type="application/json",
        headers={"X-Model-Version": version},
    )


async def _read_json(request: Request, service: ModelService) -> Any:
    body = await request.body()
    if len(body) > service.settings.max_body_bytes:
        raise ApiError(
            413,
            "payload_too_large",
            f"request body is {len(body)} bytes; the limit is {service.settings.max_body_bytes}",
        )
    if not body.strip():
        raise ApiError(
            422,
            "invalid_input",
            "request body is empty; send a JSON object",
            [{"loc": ["body"], "msg": "empty body", "type": "missing"}],
        )
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(
            422,
            "invalid_input",
            "request body is not valid JSON",
            [{"loc": ["body"], "msg": str(exc), "type": "json_invalid"}],
        ) from None


def _validate(schema: type[BaseModel], data: Any) -> BaseModel:
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        details = [
            {
                "loc": ["body", *exc_loc],
                "msg": error["msg"],
                "type": error["type"],
            }
            for error in exc.errors(include_url=False, include_input=False)
            for exc_loc in [list(error["loc"])]
        ]
        raise ApiError(
            422, "invalid_input", "request body does not match the model's features", details
        ) from None


@router.get("/health", response_model=HealthResponse, tags=["service"])
def health() -> dict[str, str]:
    """Liveness: loads nothing, needs no key."""
    return {"status": "ok"}


@router.get("/model", response_model=ModelInfo, tags=["model"])
def model_info(request: Request) -> Response:
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


@router.post("/predict", response_model=PredictResponse, tags=["model"])
async def predict_one(request: Request) -> Response:
    """Score one record whose fields are the model's features."""
    service = _service(request)
    data = await _read_json(request, service)
    loaded = service.model()
    record = _validate(service.schemas(loaded.manifest).record, data).model_dump(by_alias=True)
    result = predict(loaded.estimator, loaded.manifest, [record])
    record_prediction(loaded.version, 1, batch=False)
    probabilities = result.probability_dicts()
    return _json(
        {
            "prediction": result.labels[0],
            "probabilities": probabilities[0] if probabilities else None,
            "model": {"name": loaded.name, "version": loaded.version},
            "request_id": request_id_of(request),
        },
        loaded.version,
    )


@router.post("/batch_predict", response_model=BatchResponse, tags=["model"])
async def batch_predict(request: Request) -> Response:
    """Score many records in one vectorised call; predictions keep the input order."""
    service = _service(request)
    data = await _read_json(request, service)
    limit = service.settings.max_batch_records
    records = data.get("records") if isinstance(data, dict) else None
    if isinstance(records, list) and len(records) > limit:
        raise ApiError(
            413,
            "payload_too_large",
            f"{len(records)} records in one call; the limit is {limit}",
            [{"loc": ["body", "records"], "msg": f"at most {limit} records", "type": "too_long"}],
        )
    loaded = service.model()
    batch = _validate(service.schemas(loaded.manifest).batch, data)
    rows = [r.model_dump(by_alias=True) for r in getattr(batch, "records")]  # noqa: B009
    result = predict(loaded.estimator, loaded.manifest, rows)
    record_prediction(loaded.version, len(rows), batch=True)
    probabilities: list[dict[str, float] | None] = [*(result.probability_dicts() or [])] or [
        None
    ] * len(rows)
    return _json(
        {
            "predictions": [
                {"prediction": label, "probabilities": p}
                for label, p in zip(result.labels, probabilities, strict=True)
            ],
            "count": len(rows),
            "model": {"name": loaded.name, "version": loaded.version},
            "request_id": request_id_of(request),
        },
        loaded.version,
    )
